//! `exporters.otlp.auth.google`: the collector forwards to an endpoint that,
//! as Google's Telemetry (OTLP) API does, takes only requests with a valid
//! OAuth 2.0 access token, over gRPC and over HTTP. The token comes from a
//! service-account key (`credentials_file`) exchanged at a stand-in of
//! Google's token endpoint, which checks what Google checks: the JWT bearer
//! grant, an assertion signed for this endpoint (`aud`) by the key's
//! account (`iss`), asking for the configured scope.
//!
//! The key in `tests/fixtures/google/throwaway-key.pem` was generated for
//! these tests and is trusted by nothing but this stand-in.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use gardener_exporter::batch::log_records;
use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use gardener_proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::prost::Message;
use support::{Collector, RECEIVERS};

/// The token the stand-in hands out, and the only one its OTLP endpoints take.
const TOKEN: &str = "ya29.stand-in-token";
const ACCOUNT: &str = "gardener@demo-project.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// One accepted export: its transport, its Google headers, its records.
type Export = (&'static str, HashMap<String, String>, usize);

/// What the stand-ins saw: token exchanges, and the exports they accepted.
#[derive(Default)]
struct Seen {
    token_requests: AtomicUsize,
    exports: Mutex<Vec<Export>>,
}

/// The Google headers of a request, by lower-case name.
fn google_headers(get: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    ["x-goog-project-id", "x-goog-user-project"]
        .into_iter()
        .filter_map(|name| Some((name.to_string(), get(name)?)))
        .collect()
}

/// The stand-in of `oauth2.googleapis.com/token`.
async fn token(
    seen: Arc<Seen>,
    audience: String,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    seen.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url_form(&body);
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            format!(r#"{{"error":"invalid_grant","error_description":"{why}"}}"#),
        )
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse("grant_type");
    }
    let Some(claims) = form
        .get("assertion")
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
    else {
        return refuse("assertion");
    };
    if claims["iss"] != ACCOUNT || claims["aud"] != audience.as_str() || claims["scope"] != SCOPE {
        return refuse("claims");
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!(r#"{{"access_token":"{TOKEN}","expires_in":3600,"token_type":"Bearer"}}"#),
    )
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn url_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The gRPC stand-in of the Telemetry API's logs service.
#[derive(Clone)]
struct GrpcLogs(Arc<Seen>);

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let metadata = request.metadata();
        let text = |name: &str| Some(metadata.get(name)?.to_str().ok()?.to_string());
        if text("authorization") != Some(format!("Bearer {TOKEN}")) {
            return Err(tonic::Status::unauthenticated("no valid access token"));
        }
        let headers = google_headers(text);
        let records = log_records(request.get_ref());
        self.0
            .exports
            .lock()
            .unwrap()
            .push(("grpc", headers, records));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// The HTTP stand-in of `POST /v1/logs`.
async fn http_logs(seen: Arc<Seen>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let text = |name: &str| Some(headers.get(name)?.to_str().ok()?.to_string());
    if text("authorization") != Some(format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, Vec::new());
    }
    let Ok(request) = ExportLogsServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let google = google_headers(text);
    seen.exports
        .lock()
        .unwrap()
        .push(("http", google, log_records(&request)));
    (
        StatusCode::OK,
        ExportLogsServiceResponse::default().encode_to_vec(),
    )
}

/// Starts the token endpoint and both OTLP stand-ins on loopback ports:
/// (token URL, gRPC endpoint, HTTP endpoint).
fn start_stand_ins(
    runtime: &tokio::runtime::Runtime,
    seen: &Arc<Seen>,
) -> (String, String, String) {
    runtime.block_on(async {
        let bind = || tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let token_listener = bind().await.unwrap();
        let token_url = format!("http://{}/token", token_listener.local_addr().unwrap());
        let audience = token_url.clone();
        let token_seen = seen.clone();
        let token_app = axum::Router::new().route(
            "/token",
            post(move |body: Bytes| token(token_seen.clone(), audience.clone(), body)),
        );
        tokio::spawn(async move { axum::serve(token_listener, token_app).await });

        let http_listener = bind().await.unwrap();
        let http_url = format!("http://{}", http_listener.local_addr().unwrap());
        let http_seen = seen.clone();
        let http_app = axum::Router::new().route(
            "/v1/logs",
            post(move |headers: HeaderMap, body: Bytes| {
                http_logs(http_seen.clone(), headers, body)
            }),
        );
        tokio::spawn(async move { axum::serve(http_listener, http_app).await });

        let grpc_listener = bind().await.unwrap();
        let grpc_url = format!("http://{}", grpc_listener.local_addr().unwrap());
        let service = LogsServiceServer::new(GrpcLogs(seen.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc_listener)),
        );
        (token_url, grpc_url, http_url)
    })
}

/// A service-account key file whose token endpoint is the stand-in.
fn service_account(dir: &std::path::Path, token_url: &str) -> std::path::PathBuf {
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/google/throwaway-key.pem"),
    )
    .expect("the throwaway key");
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "throwaway",
        "private_key": key,
        "client_email": ACCOUNT,
        "client_id": "1",
        "token_uri": token_url,
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

#[test]
fn exports_carry_a_google_access_token_over_grpc_and_http() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = Arc::new(Seen::default());
    let (token_url, grpc_url, http_url) = start_stand_ins(&runtime, &seen);
    let dir = tempfile::tempdir().unwrap();
    let key = service_account(dir.path(), &token_url);
    let key = key.display();
    let collector = Collector::start_with(&format!(
        "{RECEIVERS}exporters:
  otlp/grpc:
    endpoint: \"{grpc_url}\"
    auth:
      google:
        credentials_file: \"{key}\"
        quota_project: billing-project
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
  otlp/http:
    endpoint: \"{http_url}\"
    protocol: http/protobuf
    compression: none
    auth:
      google:
        credentials_file: \"{key}\"
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
"
    ));
    let record = |body: &str| LogRecord {
        severity_number: 9,
        body: Some(gardener_proto::build::string(body)),
        ..Default::default()
    };
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        for i in 0..3 {
            let request = gardener_proto::build::logs_request(
                "api",
                vec![record(&format!("checkout {i} done")); 2],
            );
            client.export(request).await.expect("accepted");
            // Separate exports, so that later ones reuse the cached token.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    for exporter in ["otlp/grpc", "otlp/http"] {
        collector.wait_for_counter(
            "gardener_exporter_sent_records_total",
            &[("exporter", exporter), ("signal", "logs")],
            6.0,
            Duration::from_secs(20),
        );
    }
    let exports = seen.exports.lock().unwrap().clone();
    for transport in ["grpc", "http"] {
        let of: Vec<_> = exports.iter().filter(|(t, ..)| *t == transport).collect();
        assert!(of.len() >= 2, "{transport}: {exports:?}");
        assert_eq!(of.iter().map(|(.., n)| n).sum::<usize>(), 6, "{exports:?}");
        for (_, headers, _) in &of {
            assert_eq!(headers["x-goog-project-id"], "demo-project", "{headers:?}");
            let quota = headers.get("x-goog-user-project").map(String::as_str);
            let wanted = (transport == "grpc").then_some("billing-project");
            assert_eq!(quota, wanted, "{transport}: {headers:?}");
        }
    }
    // One exchange per exporter: the token is cached, not fetched per export.
    assert_eq!(seen.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        collector.counter(
            "gardener_exporter_failed_records_total",
            &[("exporter", "otlp/grpc"), ("signal", "logs")]
        ),
        0.0
    );
}
