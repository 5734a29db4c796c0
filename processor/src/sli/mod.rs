//! Service-level indicators: which records count toward which SLI, and the
//! local sliding-window evaluation behind the report, the UI and the
//! `gardener_alert_firing` gauge.
//!
//! Every SLI is a ratio of two counters, *bad events / events*, so that the
//! same definition can be evaluated by Prometheus or Cloud Monitoring over
//! the counters of many replicas (design.md: "counters, not verdicts, leave
//! the process"). This module has three parts:
//!
//! * [`config`]: the YAML definition language and the built-in SLIs from the
//!   seeds (HTTP 5xx > 1 %, WebSocket failures > 5 %, agent failures > 10 %,
//!   any database connection error);
//! * [`engine`]: [`SliEngine`], the compiled matchers that classify one
//!   [`SliEvent`] per record, cheaply and without allocating when nothing
//!   matches, with the per-thread table of remembered outcomes of quiet
//!   events in `quiet` and the literal prefilters that let most messages
//!   skip every regex in `prefilter`;
//! * [`windows`]: [`SliWindows`], bounded sliding windows with a
//!   minimum-events guard and hysteresis.

pub mod config;
pub mod engine;
mod prefilter;
mod quiet;
pub mod windows;

use gardener_proto::view::MapRef;

use crate::key_summary::KeySummary;
use serde::Deserialize;

pub use config::{
    AttributeMatcherConfig, MatcherConfig, SliConfig, SliConfigError, SliDefinitionConfig,
    BUILTIN_NAMES,
};
pub use engine::{SliEngine, SliMatch, MAX_LABELS};
pub use windows::{SliStatus, SliWindows};

/// Which kind of record an [`SliEvent`] was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SliSignal {
    Log,
    Span,
}

/// The view of one record that SLI matchers look at. The caller builds it
/// from the event view; everything is borrowed, nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct SliEvent<'a> {
    pub signal: SliSignal,
    pub service: &'a str,
    /// `SpanKind as i32` for spans (`2` = server), `None` for logs.
    pub span_kind: Option<i32>,
    pub span_name: Option<&'a str>,
    /// The span's status is `STATUS_CODE_ERROR`.
    pub span_status_error: bool,
    /// OTLP severity number (`17` = ERROR); `0` for spans.
    pub severity_number: i32,
    /// HTTP response status, from whichever shape the record had (OTLP
    /// attribute, Cloud Logging `httpRequest.status`). When `None`, matchers
    /// also look at the `http.response.status_code` and `http.status_code`
    /// attributes.
    pub http_status: Option<u16>,
    /// The error signature's category, e.g. `database_connection`,
    /// `websocket_state`.
    pub category: Option<&'a str>,
    pub message: &'a str,
    pub attributes: MapRef<'a>,
    /// Attributes the collector adds to the record (`gardener.trace_context`),
    /// seen by matchers as if they were the last record attributes.
    pub added_attributes: &'a [(&'a str, &'a str)],
    pub resource_attributes: MapRef<'a>,
    /// The summaries of every key the matchers may look up, per list, when
    /// the caller has them at hand; `None`: made from the lists the first
    /// time a matcher asks for an attribute.
    pub attribute_keys: Option<EventKeys>,
}

/// The key summaries of an event's attribute lists: the record's own with
/// the collector's additions, and the resource's. Apart, a key is looked
/// for only in a list that may have it, and two lists' keys do not add up
/// to a look-alike of a key neither has (their union's two bits can come
/// one from each list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventKeys {
    pub record: KeySummary,
    pub resource: KeySummary,
}

impl EventKeys {
    /// The summary of every list.
    pub fn all(self) -> KeySummary {
        self.record.union(self.resource)
    }
}

impl<'a> SliEvent<'a> {
    /// An event with only signal, service and message set; handy in tests
    /// and as a base for `..` struct update syntax.
    pub fn new(signal: SliSignal, service: &'a str, message: &'a str) -> Self {
        SliEvent {
            signal,
            service,
            span_kind: None,
            span_name: None,
            span_status_error: false,
            severity_number: 0,
            http_status: None,
            category: None,
            message,
            attributes: MapRef::empty(),
            added_attributes: &[],
            resource_attributes: MapRef::empty(),
            attribute_keys: None,
        }
    }
}
