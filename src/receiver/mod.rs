//! OTLP receivers: gRPC on 4317 and HTTP on 4318, as the OTLP specification
//! defines them (status codes, retryable vs. not, partial success).

pub mod decompress;
pub mod grpc;
pub mod grpc_encoded;
pub mod grpc_guard;
pub mod http;
pub mod otlp_json;
pub mod tls;

use std::time::Duration;

/// How long clients are told to wait before retrying after an overload refusal.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
