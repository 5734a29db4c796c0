//! TLS and mutual TLS on both receivers (`receivers.otlp.protocols.*.tls`),
//! against the real binary. A CA, the collector's certificate and client
//! certificates (one from another CA) are generated at test time.
//!
//! Clients: the Rust OpenTelemetry SDK over OTLP/gRPC (tonic with rustls),
//! a tonic OTLP client, hyper with rustls over OTLP/HTTP (HTTP/1.1, and
//! HTTP/2 when the client offers it), and the Python
//! OpenTelemetry SDK over both (`tests/python/send_otlp.py --tls-*`).
//! Refused: no client certificate, a certificate from another CA, plain text
//! on a TLS port. `check-config` names the TLS key at fault.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{any_value, AnyValue, KeyValue};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::resource::v1::Resource;
use http_body_util::{BodyExt, Full};
use opentelemetry::logs::{AnyValue as SdkValue, LogRecord as _, Logger, LoggerProvider, Severity};
use opentelemetry_otlp::{LogExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::Collector;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

const RECORDS: &str = "gardener_records_total";
const TLS_HANDSHAKE_FAILURES: &str = "gardener_receiver_tls_handshake_failures_total";
const TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------ certificates

/// A test PKI in a temp directory: `ca.pem`; `server.pem`/`server.key`
/// (localhost and 127.0.0.1); `client.pem`/`client.key` signed by the CA;
/// `other-ca.pem` and `other-client.pem`/`.key` signed by another CA.
struct Pki {
    dir: tempfile::TempDir,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        let ca = make_ca("log-gardener test CA");
        let other = make_ca("some other CA");
        let (server, server_key) = leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(&ca, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let (other_client, other_key) =
            leaf(&other, "intruder", &[], ExtendedKeyUsagePurpose::ClientAuth);
        write("ca.pem", &ca.pem());
        write("server.pem", &server);
        write("server.key", &server_key);
        write("client.pem", &client);
        write("client.key", &client_key);
        write("other-ca.pem", &other.pem());
        write("other-client.pem", &other_client);
        write("other-client.key", &other_key);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The `tls:` block of one receiver; `mutual` adds `client_ca_file`.
    fn tls_block(&self, mutual: bool) -> String {
        let mut block = format!(
            "tls:\n  cert_file: {:?}\n  key_file: {:?}\n",
            self.path("server.pem"),
            self.path("server.key")
        );
        if mutual {
            block.push_str(&format!("  client_ca_file: {:?}\n", self.path("ca.pem")));
        }
        block
    }

    fn config(&self, mutual: bool) -> String {
        let block = self.tls_block(mutual);
        support::config_template(20 * 1024 * 1024, &block, &block)
    }
}

/// Who the client claims to be.
#[derive(Clone, Copy, Debug)]
enum ClientCert {
    None,
    Valid,
    OtherCa,
}

impl ClientCert {
    fn files(self) -> Option<(&'static str, &'static str)> {
        match self {
            ClientCert::None => None,
            ClientCert::Valid => Some(("client.pem", "client.key")),
            ClientCert::OtherCa => Some(("other-client.pem", "other-client.key")),
        }
    }
}

// ------------------------------------------------------------ clients

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn request(service: &str, records: usize) -> ExportLogsServiceRequest {
    let text = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(text(service)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| LogRecord {
                        severity_text: "INFO".into(),
                        body: Some(text(&format!("request {i} handled"))),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn grpc_tls(pki: &Pki, cert: ClientCert) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
        .domain_name("localhost");
    match cert.files() {
        Some((cert, key)) => tls.identity(Identity::from_pem(pki.read(cert), pki.read(key))),
        None => tls,
    }
}

/// One OTLP/gRPC export with tonic; `tls: None` is plain text.
fn grpc_export(
    rt: &tokio::runtime::Runtime,
    port: u16,
    tls: Option<ClientTlsConfig>,
    service: &str,
    records: usize,
) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    let endpoint = match tls {
        Some(tls) => endpoint.tls_config(tls).unwrap(),
        None => endpoint,
    };
    rt.block_on(async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        LogsServiceClient::new(channel)
            .export(request(service, records))
            .await
            .map(|_| ())
            .map_err(|status| format!("export: {status:?}"))
    })
}

fn rustls_client(pki: &Pki, cert: ClientCert) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pki.read("ca.pem")) {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match cert.files() {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&pki.read(cert))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(&pki.read(key)).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// An OTLP/JSON logs request of `records` records of `service`.
fn json_logs(service: &str, records: usize) -> String {
    serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeLogs": [{"logRecords": (0..records)
                .map(|i| serde_json::json!({"severityText": "INFO", "body": {"stringValue": format!("request {i}")}}))
                .collect::<Vec<_>>()}]
        }]
    })
    .to_string()
}

/// One OTLP/HTTP JSON export with hyper; `tls: None` is plain text.
/// Returns the response status.
fn http_export(
    rt: &tokio::runtime::Runtime,
    port: u16,
    tls: Option<rustls::ClientConfig>,
    service: &str,
    records: usize,
) -> Result<u16, String> {
    let body = json_logs(service, records);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let request = http::Request::post(format!("{scheme}://127.0.0.1:{port}/v1/logs"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    rt.block_on(async {
        let executor = hyper_util::rt::TokioExecutor::new();
        let response = match tls {
            Some(tls) => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .build();
                let client = hyper_util::client::legacy::Client::builder(executor).build(connector);
                tokio::time::timeout(TIMEOUT, client.request(request)).await
            }
            None => {
                let client = hyper_util::client::legacy::Client::builder(executor)
                    .build(hyper_util::client::legacy::connect::HttpConnector::new());
                tokio::time::timeout(TIMEOUT, client.request(request)).await
            }
        }
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Ok(status)
    })
}

/// Log records through the Rust OpenTelemetry SDK over OTLP/gRPC with TLS.
fn sdk_send_grpc(c: &Collector, pki: &Pki, service: &str, records: usize) {
    let exporter = LogExporter::builder()
        .with_tonic()
        .with_endpoint(format!("https://127.0.0.1:{}", c.ports.grpc))
        .with_tls_config(grpc_tls(pki, ClientCert::Valid))
        .with_timeout(TIMEOUT)
        .build()
        .expect("build the OTLP log exporter");
    let provider = SdkLoggerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    let logger = provider.logger("e2e-mtls");
    for i in 0..records {
        let mut record = logger.create_log_record();
        record.set_severity_number(Severity::Warn);
        record.set_severity_text("WARN");
        record.set_body(SdkValue::from(format!("slow response {i}")));
        logger.emit(record);
    }
    provider.force_flush().expect("flush logs");
    provider.shutdown().expect("shut the logger provider down");
}

fn python_send(
    c: &Collector,
    pki: &Pki,
    protocol: &str,
    cert: ClientCert,
    service: &str,
    logs: usize,
) -> Result<serde_json::Value, String> {
    let endpoint = match protocol {
        "grpc" => format!("127.0.0.1:{}", c.ports.grpc),
        _ => format!("https://127.0.0.1:{}", c.ports.http),
    };
    let ca = pki.path("ca.pem");
    let mut args = vec![
        "--service".to_string(),
        service.to_string(),
        "--logs".to_string(),
        logs.to_string(),
        "--tls-ca".to_string(),
        ca.display().to_string(),
        "--timeout".to_string(),
        "5".to_string(),
    ];
    if let Some((cert, key)) = cert.files() {
        args.extend([
            "--tls-cert".to_string(),
            pki.path(cert).display().to_string(),
            "--tls-key".to_string(),
            pki.path(key).display().to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::try_python_script_at(
        c,
        "send_otlp.py",
        protocol,
        &endpoint,
        &args,
        Duration::from_secs(90),
    )
}

fn logs_of(c: &Collector, service: &str) -> f64 {
    c.counter(RECORDS, &[("signal", "logs"), ("service", service)])
}

// ------------------------------------------------------------ tests

/// Sends `bodies` at once over one hyper client whose TLS handshake offers
/// `h2` and `http/1.1` (ALPN); the status and HTTP version of each answer.
fn https_exports_offering_h2(
    rt: &tokio::runtime::Runtime,
    port: u16,
    tls: rustls::ClientConfig,
    bodies: Vec<String>,
) -> Result<Vec<(u16, http::Version)>, String> {
    rt.block_on(async {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_all_versions()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let calls = bodies.into_iter().map(|body| {
            let client = client.clone();
            async move {
                let request = http::Request::post(format!("https://127.0.0.1:{port}/v1/logs"))
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                let response = tokio::time::timeout(TIMEOUT, client.request(request))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| format!("{e:?}"))?;
                let answer = (response.status().as_u16(), response.version());
                let _ = response.into_body().collect().await;
                Ok::<_, String>(answer)
            }
        });
        futures::future::join_all(calls).await.into_iter().collect()
    })
}

/// A TLS client that offers HTTP/2 is served over it on the HTTP port, as
/// the Collector's HTTP receiver does, with several requests of one
/// connection at once; refusals keep their answers.
#[test]
fn an_https_client_offering_http2_is_served_over_http2() {
    let pki = Pki::new();
    let mut collector = Collector::start_with(&pki.config(false));
    let rt = runtime();
    let mut bodies: Vec<String> = (0..8).map(|_| json_logs("h2-client", 5)).collect();
    bodies.push("{not json".to_string());
    let answers = https_exports_offering_h2(
        &rt,
        collector.ports.http,
        rustls_client(&pki, ClientCert::None),
        bodies,
    )
    .expect("HTTPS exports offering h2");
    let (accepted, refused) = answers.split_at(8);
    for answer in accepted {
        assert_eq!(*answer, (200, http::Version::HTTP_2), "{answers:?}");
    }
    assert_eq!(refused, [(400, http::Version::HTTP_2)], "{answers:?}");
    collector.expect_counter(
        RECORDS,
        &[("signal", "logs"), ("service", "h2-client")],
        40.0,
    );
    drop(rt);
    collector.stop_cleanly();
}

/// An HTTP/2 client that completes the TLS handshake but sends no request
/// is disconnected after `read_header_timeout`, as an HTTP/1.1 one is
/// (hyper's HTTP/2 server alone would wait for it forever).
#[test]
fn an_http2_connection_without_a_request_is_closed_after_read_header_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new();
    let block = pki.tls_block(false);
    let http_block = format!("{block}read_header_timeout: 1s\n");
    let mut collector =
        Collector::start_with(&support::config_template(20 << 20, &block, &http_block));
    let rt = runtime();
    let port = collector.ports.http;
    let mut tls = rustls_client(&pki, ClientCert::None);
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let open_for = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
        let start = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        // The server's SETTINGS may come first; then the end of the stream.
        loop {
            match tokio::time::timeout(TIMEOUT, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break start.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the connection was still open after {TIMEOUT:?}"),
            }
        }
    });
    assert!(
        open_for >= Duration::from_millis(800) && open_for < Duration::from_secs(5),
        "closed after {open_for:?}"
    );
    drop(rt);
    collector.assert_alive();
}

#[test]
fn mtls_accepts_clients_with_a_certificate_from_the_ca() {
    let pki = Pki::new();
    let mut collector = Collector::start_with(&pki.config(true));
    let rt = runtime();
    {
        let _guard = rt.enter();
        sdk_send_grpc(&collector, &pki, "sdk-grpc", 7);
    }
    grpc_export(
        &rt,
        collector.ports.grpc,
        Some(grpc_tls(&pki, ClientCert::Valid)),
        "tonic-grpc",
        3,
    )
    .expect("a tonic client with a valid certificate is accepted");
    let status = http_export(
        &rt,
        collector.ports.http,
        Some(rustls_client(&pki, ClientCert::Valid)),
        "hyper-http",
        5,
    )
    .expect("an HTTPS client with a valid certificate is accepted");
    assert_eq!(status, 200);

    collector.expect_counter(RECORDS, &[("signal", "logs"), ("service", "sdk-grpc")], 7.0);
    collector.expect_counter(
        RECORDS,
        &[("signal", "logs"), ("service", "tonic-grpc")],
        3.0,
    );
    collector.expect_counter(
        RECORDS,
        &[("signal", "logs"), ("service", "hyper-http")],
        5.0,
    );
    drop(rt);
    collector.stop_cleanly();
}

#[test]
fn mtls_refuses_no_certificate_another_ca_and_plain_text() {
    let pki = Pki::new();
    let mut collector = Collector::start_with(&pki.config(true));
    let rt = runtime();
    let (grpc, http) = (collector.ports.grpc, collector.ports.http);

    for cert in [ClientCert::None, ClientCert::OtherCa] {
        let service = format!("grpc-{cert:?}");
        let result = grpc_export(&rt, grpc, Some(grpc_tls(&pki, cert)), &service, 2);
        assert!(result.is_err(), "gRPC with {cert:?} was accepted");
        let service = format!("http-{cert:?}");
        let result = http_export(&rt, http, Some(rustls_client(&pki, cert)), &service, 2);
        assert!(result.is_err(), "HTTPS with {cert:?} answered {result:?}");
    }
    let plain = grpc_export(&rt, grpc, None, "grpc-plain", 2);
    assert!(plain.is_err(), "plain-text gRPC on a TLS port was accepted");
    let plain = http_export(&rt, http, None, "http-plain", 2);
    assert!(
        plain.is_err(),
        "plain-text HTTP on a TLS port answered {plain:?}"
    );

    // The receivers still serve a valid client after all that.
    grpc_export(
        &rt,
        grpc,
        Some(grpc_tls(&pki, ClientCert::Valid)),
        "grpc-valid",
        1,
    )
    .expect("valid gRPC client");
    assert_eq!(
        http_export(
            &rt,
            http,
            Some(rustls_client(&pki, ClientCert::Valid)),
            "http-valid",
            1
        ),
        Ok(200)
    );
    collector.expect_counter(
        RECORDS,
        &[("signal", "logs"), ("service", "grpc-valid")],
        1.0,
    );
    collector.expect_counter(
        RECORDS,
        &[("signal", "logs"), ("service", "http-valid")],
        1.0,
    );
    let text = collector.metrics();
    let all = support::samples(&text, RECORDS);
    let total: f64 = all.iter().map(|(_, v)| v).sum();
    assert_eq!(total, 2.0, "refused clients were counted: {all:?}");
    // Every refused connection is counted: no certificate, another CA and
    // plain text on each transport (a client may retry, hence "at least").
    for transport in ["grpc", "http"] {
        let labels = [("transport", transport), ("reason", "error")];
        let failures = collector.counter(TLS_HANDSHAKE_FAILURES, &labels);
        assert!(
            failures >= 3.0,
            "{transport}: {failures} handshake failures counted, expected at least 3: {:?}",
            support::samples(&collector.metrics(), TLS_HANDSHAKE_FAILURES)
        );
    }
    drop(rt);
    collector.assert_alive();
}

#[test]
fn server_tls_without_client_ca_needs_no_client_certificate() {
    let pki = Pki::new();
    let mut collector = Collector::start_with(&pki.config(false));
    let rt = runtime();
    let (grpc, http) = (collector.ports.grpc, collector.ports.http);
    grpc_export(
        &rt,
        grpc,
        Some(grpc_tls(&pki, ClientCert::None)),
        "grpc-tls",
        4,
    )
    .expect("gRPC over TLS without a client certificate");
    assert_eq!(
        http_export(
            &rt,
            http,
            Some(rustls_client(&pki, ClientCert::None)),
            "http-tls",
            6
        ),
        Ok(200)
    );
    assert!(grpc_export(&rt, grpc, None, "grpc-plain", 1).is_err());
    assert!(http_export(&rt, http, None, "http-plain", 1).is_err());
    collector.expect_counter(RECORDS, &[("signal", "logs"), ("service", "grpc-tls")], 4.0);
    collector.expect_counter(RECORDS, &[("signal", "logs"), ("service", "http-tls")], 6.0);
    assert_eq!(logs_of(&collector, "grpc-plain"), 0.0);
    assert_eq!(logs_of(&collector, "http-plain"), 0.0);
    drop(rt);
    collector.assert_alive();
}

#[test]
fn python_sdk_over_mtls_grpc_and_http() {
    let pki = Pki::new();
    let mut collector = Collector::start_with(&pki.config(true));
    for protocol in ["grpc", "http"] {
        let service = format!("py-{protocol}");
        let summary = python_send(&collector, &pki, protocol, ClientCert::Valid, &service, 9)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary["logs_exported"], 9, "{summary}");
        collector.expect_counter(RECORDS, &[("signal", "logs"), ("service", &service)], 9.0);
        // Without a client certificate the SDK's export fails.
        let refused = format!("py-{protocol}-nocert");
        let result = python_send(&collector, &pki, protocol, ClientCert::None, &refused, 3);
        assert!(
            result.is_err(),
            "{protocol} without a certificate: {result:?}"
        );
        assert_eq!(logs_of(&collector, &refused), 0.0);
    }
    collector.assert_alive();
}

#[test]
fn check_config_names_the_tls_key_at_fault() {
    let pki = Pki::new();
    let check = |config: &str| -> (bool, String) {
        let path = pki.path("config.yaml");
        std::fs::write(&path, support::Ports::pick().fill(config)).unwrap();
        let output = support::run_with_timeout(
            std::process::Command::new(env!("CARGO_BIN_EXE_log-gardener"))
                .arg("check-config")
                .arg(&path),
            Duration::from_secs(30),
        );
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(&pki.config(true));
    assert!(ok, "a valid TLS config was refused: {stderr}");

    let missing_ca = pki.config(true).replace("ca.pem", "no-such-ca.pem");
    let (ok, stderr) = check(&missing_ca);
    assert!(!ok);
    assert!(
        stderr.contains("receivers.otlp.protocols.grpc.tls.client_ca_file: cannot read"),
        "{stderr}"
    );

    // The client's key does not belong to the server's certificate.
    let mismatch = pki.config(false).replace("server.key", "client.key");
    let (ok, stderr) = check(&mismatch);
    assert!(!ok);
    assert!(
        stderr.contains("receivers.otlp.protocols.grpc.tls: key_file does not fit cert_file"),
        "{stderr}"
    );

    // A key where the certificate should be (HTTP only, so the key names http).
    let swapped = support::config_template(
        1024,
        "",
        &pki.tls_block(false).replace("server.pem", "server.key"),
    );
    let (ok, stderr) = check(&swapped);
    assert!(!ok);
    assert!(
        stderr.contains("receivers.otlp.protocols.http.tls.cert_file: ")
            && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}
