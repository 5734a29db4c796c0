//! The one door through which protobuf types enter log-gardener.
//!
//! Every other crate names OTLP and Google types through this crate, so that
//! there is exactly one version of each generated type (and of tonic/prost)
//! in the build, and swapping a source crate touches one file.

/// OTLP types and tonic services (`opentelemetry-proto`, gen-tonic).
pub use opentelemetry_proto::tonic as otlp;

/// Google Cloud Monitoring v3 types and client (`google.monitoring.v3`).
pub use googleapis_tonic_google_monitoring_v3::google::monitoring::v3 as monitoring;

/// Google API common types (`google.api`: MonitoredResource, MetricDescriptor, …).
pub use googleapis_tonic_google_monitoring_v3::google::api;

/// `google.rpc.Status` and error details (`RetryInfo`), used by OTLP error
/// responses and by the Cloud Monitoring API.
pub use googleapis_tonic_google_monitoring_v3::google::rpc;

/// Constructors for OTLP values and requests.
pub mod build;

/// Trace and span id lengths of decoded requests, as the Collector checks them.
pub mod ids;

pub mod wire;

pub use prost;

/// Borrowed views of OTLP values and records, decoded or encoded.
pub mod view;
