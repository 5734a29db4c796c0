//! Names of the attributes log-gardener adds to records (a contract, see design.md).

/// 16 lowercase hex digits: the deterministic error fingerprint.
pub const SIGNATURE: &str = "gardener.signature";
/// The masked message template.
pub const TEMPLATE: &str = "gardener.template";
/// The rule pack's category (e.g. `database_connection`, `uncategorized`).
pub const CATEGORY: &str = "gardener.category";
/// `P0`..`P3`.
pub const PRIORITY: &str = "gardener.priority";
/// `present` | `missing` | `recovered` | `invalid`.
pub const TRACE_CONTEXT: &str = "gardener.trace_context";
/// The name proposed in OpenTelemetry semantic conventions (and used by the
/// Collector's drain processor) for a log template; carries the same value as
/// [`TEMPLATE`].
pub const LOG_RECORD_TEMPLATE: &str = "log.record.template";
