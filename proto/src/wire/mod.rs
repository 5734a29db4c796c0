//! Protobuf wire-format reading, validation and splicing for OTLP logs,
//! without decoding into owned prost structs.
//!
//! Why this exists: decoding an `ExportLogsServiceRequest` into prost structs
//! costs about 11,000 instructions per log record (one heap string per key
//! and value, freed again after export). The zero-copy path carries the
//! encoded request bytes through the pipeline instead and reads them in
//! place:
//!
//! - [`validate_logs_request`] checks once, at the receiver, that the bytes
//!   are exactly what `ExportLogsServiceRequest::decode` would accept, so
//!   that every later reader can trust them (and so that what we forward is
//!   what a prost-based collector would have forwarded).
//! - [`fields`], [`logs_request`] and [`log_record`] read a validated request
//!   without allocating.
//! - [`put_string_attribute`], [`put_bytes_field`] and
//!   [`splice_logs_request`] add fields to records by copying the request
//!   once with rewritten length prefixes, instead of decode/modify/encode.
//!
//! Nothing here panics or allocates on any input (except the output `Vec`
//! of the encoders and of the splice); readers given bytes that were not
//! validated return what they could read and stop at the first malformed
//! byte.

mod metrics_count;
mod reader;
mod splice;
mod split;
mod text;
mod validate;

#[cfg(test)]
mod tests;

pub use metrics_count::count_metrics_messages;
pub use reader::{
    fields, key_value, len_fields, log_record, log_record_with, logs_request, plain_int_value,
    plain_key_value, plain_string_value, put_bytes_field, put_key, put_string_attribute,
    put_varint, single_field, varint_len, Fields, KeyValueRef, LenFields, LogRecordRef,
    LogsRequestRef, ResourceLogsIter, ResourceLogsRef, ScopeLogsIter, ScopeLogsRef, WireValue,
};
pub use splice::{splice_logs_request, splice_trace_request};
pub use split::{split_request, SplitPart};
pub use text::{is_ascii, is_utf8, utf8};
pub use validate::{
    validate_logs_request, validate_logs_request_strict, validate_trace_request,
    validate_trace_request_strict,
};

/// What [`validate_logs_request_strict`] and [`validate_trace_request_strict`]
/// report for an id of the wrong length (also `crate::ids`' messages).
pub(crate) const INVALID_TRACE_ID: &str = "invalid length for trace id (must be 0 or 16 bytes)";
pub(crate) const INVALID_SPAN_ID: &str = "invalid length for span id (must be 0 or 8 bytes)";

/// Why bytes are not a valid message: what was wrong and at which byte
/// offset of the validated buffer (the offset of the field's key, or of the
/// malformed value inside a nested message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    offset: usize,
    what: &'static str,
}

impl WireError {
    pub(crate) fn new(offset: usize, what: &'static str) -> Self {
        WireError { offset, what }
    }

    /// Byte offset in the validated buffer where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong, e.g. "invalid UTF-8 in string field".
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// True when the bytes are a valid message (prost decodes them) whose
    /// trace or span id has a length other than 0 or 16 (8): refused by the
    /// strict validators only.
    pub fn is_invalid_id(&self) -> bool {
        self.what == INVALID_TRACE_ID || self.what == INVALID_SPAN_ID
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_invalid_id() {
            "invalid id"
        } else {
            "malformed protobuf"
        };
        write!(f, "{kind} at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for WireError {}

/// prost's recursion limit (`prost::RECURSION_LIMIT`, not public): a
/// message field or group may be entered while fewer than this many are
/// open, counting from the top-level request (whose own fields are at 100).
pub(crate) const RECURSION_LIMIT: u32 = 100;
