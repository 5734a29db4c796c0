use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse("test.yaml", text, &|var| match var {
        "GRPC_PORT" => Some("5317".into()),
        _ => None,
    })
}

#[test]
fn embedded_default_has_the_documented_endpoints() {
    let config = Config::load(None).unwrap();
    let p = &config.receivers.otlp.protocols;
    assert_eq!(p.grpc.as_ref().unwrap().endpoint, "0.0.0.0:4317");
    assert_eq!(p.grpc.as_ref().unwrap().max_recv_msg_size_mib, 4);
    assert_eq!(p.http.as_ref().unwrap().endpoint, "0.0.0.0:4318");
    assert_eq!(
        p.http.as_ref().unwrap().max_request_body_size,
        20 * 1024 * 1024
    );
    assert_eq!(config.service.admin.endpoint, "0.0.0.0:9464");
    assert_eq!(
        config.service.shutdown_grace_period,
        Duration::from_secs(10)
    );
    assert!(config.processors.gardener.enabled);
    assert!(!config.exporters.debug_enabled());
}

#[test]
fn empty_file_means_defaults() {
    let config = parse("").unwrap();
    assert!(config.receivers.otlp.protocols.grpc.is_some());
    assert!(config.receivers.otlp.protocols.http.is_some());
}

#[test]
fn a_listed_protocol_with_no_value_is_enabled_and_unlisted_ones_are_off() {
    let config = parse("receivers:\n  otlp:\n    protocols:\n      grpc:\n").unwrap();
    let p = &config.receivers.otlp.protocols;
    assert_eq!(p.grpc.as_ref().unwrap().endpoint, "0.0.0.0:4317");
    assert!(p.http.is_none());
}

#[test]
fn env_expansion_with_defaults_and_escapes() {
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:${env:GRPC_PORT}\n      http:\n        endpoint: 127.0.0.1:${env:HTTP_PORT:-5318}\nservice:\n  admin:\n    endpoint: \"127.0.0.1:9464\" # $$HOME stays literal\n";
    let config = parse(text).unwrap();
    let p = &config.receivers.otlp.protocols;
    assert_eq!(p.grpc.as_ref().unwrap().endpoint, "127.0.0.1:5317");
    assert_eq!(p.http.as_ref().unwrap().endpoint, "127.0.0.1:5318");
}

#[test]
fn unset_variable_names_the_variable_and_line() {
    let err = parse("service:\n  admin:\n    endpoint: ${env:NOPE}\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("test.yaml:3"), "{msg}");
    assert!(msg.contains("NOPE"), "{msg}");
}

#[test]
fn unknown_key_names_its_path_and_line() {
    let err =
        parse("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: 0.0.0.0:1\n")
            .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("test.yaml:5:"), "{msg}");
    assert!(msg.contains("receivers.otlp.protocols.grpc"), "{msg}");
    assert!(msg.contains("unknown field `endpont`"), "{msg}");
}

#[test]
fn wrong_type_names_its_path_and_line() {
    let err = parse("service:\n  queue:\n    max_batches: lots\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("test.yaml:3:"), "{msg}");
    assert!(msg.contains("service.queue.max_batches"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn bad_duration_and_bad_endpoint_are_refused() {
    let err = parse("service:\n  shutdown_grace_period: soon\n").unwrap_err();
    assert!(err.to_string().contains("shutdown_grace_period"), "{err}");
    let err = parse("service:\n  admin:\n    endpoint: nowhere\n").unwrap_err();
    assert!(err.to_string().contains("service.admin.endpoint"), "{err}");
}

#[test]
fn no_protocol_at_all_is_refused() {
    let err = parse("receivers:\n  otlp:\n    protocols: {}\n").unwrap_err();
    assert!(err.to_string().contains("enable at least one"), "{err}");
}

#[test]
fn comments_are_not_expanded() {
    let config = parse("# set ${env:UNSET_IN_COMMENT} to ...\nservice:\n  admin:\n    endpoint: \"127.0.0.1:1\" # ${env:ALSO_UNSET}\n").unwrap();
    assert_eq!(config.service.admin.endpoint, "127.0.0.1:1");
}

#[test]
fn a_bad_sli_regex_is_found_by_the_deep_check() {
    let text = "processors:\n  gardener:\n    sli:\n      definitions:\n        mine:\n          events: [ { message: '(' } ]\n          bad: [ { severity_min: ERROR } ]\n          threshold: 0.1\n";
    let config = parse(text).unwrap();
    let err = config.validate_deep().unwrap_err().to_string();
    assert!(err.contains("processors.gardener"), "{err}");
}

#[test]
fn persistent_queue_is_off_by_default_and_set_by_its_directory() {
    assert!(parse("").unwrap().service.queue.persistent.is_none());
    let config =
        parse("service:\n  queue:\n    persistent:\n      directory: /var/lib/q\n").unwrap();
    let p = config.service.queue.persistent.unwrap();
    assert_eq!(p.directory, std::path::PathBuf::from("/var/lib/q"));
    assert_eq!(p.max_size_mib, 1024);
    assert_eq!(p.sync, SyncPolicy::Interval);
    assert_eq!(p.sync_interval, Duration::from_secs(1));
    let config = parse("service:\n  queue:\n    persistent:\n      directory: q\n      max_size_mib: 16\n      sync: always\n").unwrap();
    let p = config.service.queue.persistent.unwrap();
    assert_eq!((p.max_size_mib, p.sync), (16, SyncPolicy::Always));
}

#[test]
fn bad_persistent_queue_values_name_their_key() {
    let err =
        parse("service:\n  queue:\n    persistent:\n      directory: q\n      sync: sometimes\n")
            .unwrap_err();
    assert!(
        err.to_string().contains("service.queue.persistent.sync"),
        "{err}"
    );
    let err = parse("service:\n  queue:\n    persistent:\n      max_size_mib: 5\n").unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    let err =
        parse("service:\n  queue:\n    persistent:\n      directory: q\n      max_size_mib: 0\n")
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("service.queue.persistent.max_size_mib"),
        "{err}"
    );
    let err =
        parse("service:\n  queue:\n    persistent:\n      directory: q\n      sync_interval: 0s\n")
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("service.queue.persistent.sync_interval"),
        "{err}"
    );
    let err =
        parse("service:\n  queue:\n    persistent:\n      directory: q\n      fsync: always\n")
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `fsync`"), "{err}");
}

#[test]
fn receiver_timeouts_and_limits_have_defaults_and_are_checked() {
    let config = parse("").unwrap();
    let p = &config.receivers.otlp.protocols;
    let grpc = p.grpc.as_ref().unwrap();
    assert_eq!(grpc.max_concurrent_streams, 100);
    assert_eq!(grpc.max_concurrent_requests, 64);
    assert_eq!(grpc.read_timeout, Duration::from_secs(30));
    assert_eq!(grpc.keepalive_interval, Duration::from_secs(60));
    assert_eq!(grpc.keepalive_timeout, Duration::from_secs(20));
    assert_eq!(grpc.max_connection_age, None);
    assert_eq!(grpc.max_connection_idle, None);
    let http = p.http.as_ref().unwrap();
    assert_eq!(http.read_header_timeout, Duration::from_secs(10));
    assert_eq!(http.read_timeout, Duration::from_secs(30));
    assert_eq!(http.max_concurrent_requests, 64);

    let config = parse(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        read_timeout: 250ms\n        max_concurrent_streams: 8\n        keepalive_interval: 5s\n        keepalive_timeout: 1s\n        max_connection_age: 30m\n        max_connection_idle: 5m\n      http:\n        read_header_timeout: 2s\n        max_concurrent_requests: 3\n",
    )
    .unwrap();
    let p = &config.receivers.otlp.protocols;
    assert_eq!(
        p.grpc.as_ref().unwrap().read_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(p.grpc.as_ref().unwrap().max_concurrent_streams, 8);
    assert_eq!(
        p.grpc.as_ref().unwrap().keepalive_interval,
        Duration::from_secs(5)
    );
    assert_eq!(
        p.grpc.as_ref().unwrap().keepalive_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(
        p.grpc.as_ref().unwrap().max_connection_age,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(
        p.grpc.as_ref().unwrap().max_connection_idle,
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        p.http.as_ref().unwrap().read_header_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(p.http.as_ref().unwrap().max_concurrent_requests, 3);

    for (text, key) in [
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        read_timeout: 0s\n",
            "receivers.otlp.protocols.grpc.read_timeout",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      http:\n        read_timeout: 0s\n",
            "receivers.otlp.protocols.http.read_timeout",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_concurrent_requests: 0\n",
            "receivers.otlp.protocols.grpc.max_concurrent_requests",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        keepalive_timeout: 0s\n",
            "receivers.otlp.protocols.grpc.keepalive_timeout",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_connection_age: 0s\n",
            "receivers.otlp.protocols.grpc.max_connection_age",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_connection_idle: 0s\n",
            "receivers.otlp.protocols.grpc.max_connection_idle",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_connection_age_grace: 5s\n",
            "receivers.otlp.protocols.grpc.max_connection_age_grace: has no effect without",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_connection_age: 1m\n        max_connection_age_grace: 0s\n",
            "receivers.otlp.protocols.grpc.max_connection_age_grace",
        ),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn two_listeners_on_one_port_and_impossible_severities_are_refused() {
    let receivers = |grpc: &str, http: &str| {
        format!("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: {grpc}\n      http:\n        endpoint: {http}\n")
    };
    let err = parse(&receivers("0.0.0.0:4317", "0.0.0.0:4317"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("receivers.otlp.protocols.http.endpoint") && err.contains("grpc"),
        "{err}"
    );
    // A wildcard takes the port on every interface.
    assert!(parse(&receivers("127.0.0.1:4317", "0.0.0.0:4317")).is_err());
    let admin = format!(
        "{}service:\n  admin:\n    endpoint: 127.0.0.1:4318\n",
        receivers("127.0.0.1:4317", "127.0.0.1:4318")
    );
    assert!(parse(&admin)
        .unwrap_err()
        .to_string()
        .contains("service.admin.endpoint"));
    // Different ports, or one port on two distinct addresses, are fine.
    parse(&receivers("127.0.0.1:4317", "127.0.0.1:4318")).unwrap();
    parse(&receivers("127.0.0.1:4317", "127.0.0.2:4317")).unwrap();
    parse(&receivers("127.0.0.1:0", "127.0.0.1:0")).unwrap();

    let severity = |n: i32| {
        parse(&format!(
            "processors:\n  gardener:\n    signatures:\n      min_severity: {n}\n"
        ))
    };
    let err = severity(99).unwrap_err().to_string();
    assert!(
        err.contains("processors.gardener.signatures.min_severity"),
        "{err}"
    );
    assert!(severity(-1).is_err());
    severity(17).unwrap();
    severity(0).unwrap();
}
