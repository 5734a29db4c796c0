//! CORS on the OTLP/HTTP receiver, as a browser exercises it: a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), then the
//! POST with its `Origin`. Configured with a wildcard origin, a bearer
//! token and `Authorization` as an allowed header.

mod support;

use reqwest::blocking::Response;
use support::Collector;

const LOG: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web-app"}}]},"scopeLogs":[{"logRecords":[{"severityNumber":17,"body":{"stringValue":"Failed to fetch /api/threads"}}]}]}]}"#;

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

fn preflight(collector: &Collector, origin: &str) -> Response {
    support::http_client()
        .request(reqwest::Method::OPTIONS, collector.http_url("/v1/logs"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .expect("preflight")
}

fn post(collector: &Collector, origin: &str, token: Option<&str>) -> Response {
    let mut request = support::http_client()
        .post(collector.http_url("/v1/logs"))
        .header("origin", origin)
        .header("content-type", "application/json")
        .body(LOG);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.send().expect("POST")
}

#[test]
fn browsers_from_allowed_origins_may_send_and_read_refusals() {
    let collector = Collector::start_with(&support::config_template(
        20 * 1024 * 1024,
        "",
        "auth_token: secret\ncors:\n  allowed_origins: [\"https://*.example.com\"]\n  allowed_headers: [Authorization]\n  max_age: 600\n",
    ));
    let origin = "https://app.example.com";

    // The preflight is answered before the token check, and allows the POST.
    let answer = preflight(&collector, origin);
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert!(header(&answer, "access-control-allow-methods")
        .unwrap()
        .contains("post"));
    let headers = header(&answer, "access-control-allow-headers").unwrap();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(
        header(&answer, "access-control-max-age").as_deref(),
        Some("600")
    );

    // Another origin gets no CORS headers: the browser stops there.
    let answer = preflight(&collector, "https://example.com.evil.net");
    assert_eq!(header(&answer, "access-control-allow-origin"), None);

    // The export itself, and a refusal the application can read.
    let answer = post(&collector, origin, Some("secret"));
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    let answer = post(&collector, origin, None);
    assert_eq!(answer.status().as_u16(), 401);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(origin)
    );

    collector.wait_for_counter(
        "gardener_records_total",
        &[("signal", "logs"), ("service", "web-app")],
        1.0,
        std::time::Duration::from_secs(10),
    );
    // Preflights are not exports: nothing refused but the request without a token.
    let refused = |reason: &str| {
        collector.counter(
            "gardener_receiver_refused_requests_total",
            &[("transport", "http"), ("reason", reason)],
        )
    };
    assert_eq!(refused("wrong_method"), 0.0);
    assert_eq!(refused("unauthenticated"), 1.0);
}

#[test]
fn without_cors_a_preflight_is_a_wrong_method() {
    let collector = Collector::start();
    let answer = preflight(&collector, "https://app.example.com");
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
}
