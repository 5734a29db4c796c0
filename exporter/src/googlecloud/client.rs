//! The `MetricService` client: TLS channel (or plaintext for emulators),
//! OAuth token per request, error classification and partial-failure
//! decoding.

use std::sync::Arc;
use std::time::Duration;

use gardener_proto::api::MetricDescriptor;
use gardener_proto::monitoring::{
    metric_service_client::MetricServiceClient, CreateMetricDescriptorRequest,
    CreateTimeSeriesRequest, CreateTimeSeriesSummary, TimeSeries,
};
use gardener_proto::rpc;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

/// OAuth scope for writing metrics.
pub const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.write";

const SUMMARY_TYPE_URL: &str = "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary";

/// A thin client over the generated `MetricServiceClient`.
#[derive(Clone)]
pub struct MonitoringClient {
    inner: MetricServiceClient<Channel>,
    auth: Option<Arc<dyn gcp_auth::TokenProvider>>,
    project_name: String,
    timeout: Duration,
}

impl MonitoringClient {
    /// Connects lazily (the first request opens the connection), so a
    /// network that is down at start-up does not stop the collector.
    pub fn new(
        endpoint: &str,
        use_insecure: bool,
        project_id: &str,
        timeout: Duration,
        auth: Option<Arc<dyn gcp_auth::TokenProvider>>,
    ) -> anyhow::Result<Self> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else if use_insecure {
            format!("http://{endpoint}")
        } else {
            format!("https://{endpoint}")
        };
        let mut ep = Endpoint::from_shared(uri.clone())
            .map_err(|e| anyhow::anyhow!("googlecloud.endpoint {uri:?}: {e}"))?
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .tcp_keepalive(Some(Duration::from_secs(60)));
        if uri.starts_with("https://") {
            let host = ep
                .uri()
                .host()
                .unwrap_or("monitoring.googleapis.com")
                .to_string();
            ep = ep
                .tls_config(
                    ClientTlsConfig::new()
                        .with_enabled_roots()
                        .domain_name(host),
                )
                .map_err(|e| anyhow::anyhow!("googlecloud.endpoint {uri:?}: TLS: {e}"))?;
        }
        let channel = ep.connect_lazy();
        Ok(Self {
            inner: MetricServiceClient::new(channel),
            auth,
            project_name: format!("projects/{project_id}"),
            timeout,
        })
    }

    pub fn project_name(&self) -> &str {
        &self.project_name
    }

    async fn request<T>(&self, msg: T) -> Result<Request<T>, Status> {
        let mut req = Request::new(msg);
        req.set_timeout(self.timeout);
        if let Some(auth) = &self.auth {
            let token = auth.token(&[SCOPE]).await.map_err(|e| {
                Status::unauthenticated(format!("getting a Google access token: {e}"))
            })?;
            let value = MetadataValue::try_from(format!("Bearer {}", token.as_str()))
                .map_err(|_| Status::unauthenticated("access token is not a valid header value"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }

    pub async fn create_time_series(&self, series: Vec<TimeSeries>) -> Result<(), Status> {
        let req = self
            .request(CreateTimeSeriesRequest {
                name: self.project_name.clone(),
                time_series: series,
            })
            .await?;
        self.inner.clone().create_time_series(req).await.map(|_| ())
    }

    pub async fn create_metric_descriptor(
        &self,
        d: MetricDescriptor,
    ) -> Result<MetricDescriptor, Status> {
        let req = self
            .request(CreateMetricDescriptorRequest {
                name: self.project_name.clone(),
                metric_descriptor: Some(d),
            })
            .await?;
        self.inner
            .clone()
            .create_metric_descriptor(req)
            .await
            .map(|r| r.into_inner())
    }
}

/// Whether a failed call is worth repeating.
pub fn is_retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
}

/// `Code::InvalidArgument` → `invalid_argument` (the `reason` label).
pub fn reason(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The `CreateTimeSeriesSummary` that the API attaches to the error of a
/// request of which only some points were written.
pub fn partial_summary(status: &Status) -> Option<CreateTimeSeriesSummary> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let st = rpc::Status::decode(details).ok()?;
    st.details
        .iter()
        .find(|any| any.type_url == SUMMARY_TYPE_URL)
        .and_then(|any| CreateTimeSeriesSummary::decode(any.value.as_slice()).ok())
}

/// Indices `N` of `timeSeries[N]` mentioned in an error message (the API
/// names the failing series that way).
pub fn failing_indices(message: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(pos) = rest.find("timeSeries[") {
        rest = &rest[pos + "timeSeries[".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(i) = digits.parse() {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_a_tls_client_for_google_without_connecting() {
        let c = MonitoringClient::new(
            crate::googlecloud::config::DEFAULT_ENDPOINT,
            false,
            "p",
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!(c.project_name(), "projects/p");
        assert!(
            MonitoringClient::new("127.0.0.1:1", true, "p", Duration::from_secs(1), None).is_ok()
        );
    }

    #[test]
    fn indices() {
        assert_eq!(
            failing_indices("One or more TimeSeries could not be written: timeSeries[3]: bad; timeSeries[17].points[0]: x; timeSeries[3]"),
            vec![3, 17]
        );
        assert!(failing_indices("nothing").is_empty());
    }

    #[test]
    fn summary_roundtrip() {
        let summary = CreateTimeSeriesSummary {
            total_point_count: 5,
            success_point_count: 3,
            errors: vec![],
        };
        let st = rpc::Status {
            code: Code::InvalidArgument as i32,
            message: "m".into(),
            details: vec![prost_types::Any {
                type_url: SUMMARY_TYPE_URL.into(),
                value: summary.encode_to_vec(),
            }],
        };
        let status = Status::with_details(Code::InvalidArgument, "m", st.encode_to_vec().into());
        assert_eq!(partial_summary(&status), Some(summary));
        assert_eq!(partial_summary(&Status::invalid_argument("x")), None);
    }
}
