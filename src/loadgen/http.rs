//! OTLP/HTTP sender: protobuf bodies POSTed to `/v1/logs` or `/v1/traces`
//! over a keep-alive HTTP/1.1 client (one client, one connection pool per
//! concurrency slot).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;

use super::grpc::ExportResponse;
use super::{Outcome, SignalKind};

pub struct HttpSender {
    client: Client<HttpConnector, Full<Bytes>>,
    logs_url: http::Uri,
    traces_url: http::Uri,
}

impl HttpSender {
    pub fn new(endpoint: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = endpoint.trim_end_matches('/');
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Self {
            client,
            logs_url: format!("{base}/v1/logs").parse()?,
            traces_url: format!("{base}/v1/traces").parse()?,
        })
    }

    pub async fn send(&mut self, signal: SignalKind, body: Bytes) -> Outcome {
        let uri = match signal {
            SignalKind::Logs => self.logs_url.clone(),
            SignalKind::Traces => self.traces_url.clone(),
        };
        let request = match http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
        {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(format!("http: {e}")),
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Outcome::Error(format!("http body: {e}")),
        };
        if status.is_success() {
            let rejected = ExportResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected.max(0) as u64)
                .unwrap_or(0);
            Outcome::Ok { rejected }
        } else if status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::SERVICE_UNAVAILABLE
            || status == http::StatusCode::BAD_GATEWAY
            || status == http::StatusCode::GATEWAY_TIMEOUT
        {
            Outcome::Retryable
        } else {
            Outcome::Error(format!("HTTP {status}"))
        }
    }
}
