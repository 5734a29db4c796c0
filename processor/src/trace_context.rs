//! Trace-context checks for log records.
//!
//! A log record is only useful for debugging if a backend can join it with the
//! trace it was written in. This module classifies every log record as
//! [`TraceContextState::Present`], [`Missing`](TraceContextState::Missing),
//! [`Recovered`](TraceContextState::Recovered) or
//! [`Invalid`](TraceContextState::Invalid) and, when the OTLP `trace_id` field
//! is empty but the application (or Cloud Logging) put an id somewhere else,
//! writes that id into `trace_id`/`span_id` so that downstream backends
//! correlate the record without any change in the application.
//!
//! It also holds the configurable [`IdConsistency`] rules: pairs of
//! application-level ids that must agree (the seeds' "Thread ID mismatch").
//!
//! Everything here is pure: no clock, no I/O, no allocation on the
//! `present` path.

use gardener_proto::otlp::common::v1::KeyValue;
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::view::{Entry, LogRef, MapRef, ValueRef};

use crate::sli::engine::length_bit;
use crate::text::{has_whitespace, trim};
use crate::trace_text::ids_in_text;
use memchr::memmem::FinderRev;
use regex::Regex;
use serde::Deserialize;
use std::sync::LazyLock;

/// The outcome of [`check_and_recover`]; exported as the
/// `gardener.trace_context` attribute and the `state` label of
/// `gardener_trace_context_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceContextState {
    /// `trace_id` holds a valid 16-byte, non-zero id.
    Present,
    /// No trace id anywhere on the record.
    Missing,
    /// `trace_id` was empty, an id was found in an attribute or the body and
    /// has been written into `trace_id` (and `span_id` where one was given).
    Recovered,
    /// An id is there but malformed (wrong length, not hex, all zeros). The
    /// record is left untouched: guessing would correlate it with the wrong
    /// trace.
    Invalid,
}

impl TraceContextState {
    /// All states, in a fixed order (for pre-registering counters).
    pub const ALL: [TraceContextState; 4] = [
        TraceContextState::Present,
        TraceContextState::Missing,
        TraceContextState::Recovered,
        TraceContextState::Invalid,
    ];

    /// The contract value: `present` | `missing` | `recovered` | `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceContextState::Present => "present",
            TraceContextState::Missing => "missing",
            TraceContextState::Recovered => "recovered",
            TraceContextState::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for TraceContextState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keys whose value is a trace id in one of the accepted forms: 32 hex digits,
/// Cloud Logging's `projects/P/traces/HEX`, a W3C `traceparent`, or a
/// Google `X-Cloud-Trace-Context` (`HEX/SPAN_DECIMAL;o=1`).
///
/// `otelTraceID`/`otelSpanID` are what the OpenTelemetry Python logging
/// instrumentation injects into every log record, which is how ids reach
/// Cloud Logging JSON payloads of Python services like the seeds' backend.
pub(crate) const TRACE_KEYS: &[&str] = &[
    "logging.googleapis.com/trace",
    "trace",
    "trace_id",
    "traceId",
    "trace.id",
    "traceparent",
    "otelTraceID",
    "x-cloud-trace-context",
    "X-Cloud-Trace-Context",
];

/// The lengths of [`TRACE_KEYS`] and [`SPAN_KEYS`], one bit each: most
/// attributes are neither, and their length says so at once.
const ID_KEY_LENGTHS: u64 = {
    let mut mask = 0;
    let mut i = 0;
    while i < TRACE_KEYS.len() {
        mask |= length_bit(TRACE_KEYS[i].len());
        i += 1;
    }
    let mut i = 0;
    while i < SPAN_KEYS.len() {
        mask |= length_bit(SPAN_KEYS[i].len());
        i += 1;
    }
    mask
};

/// Keys whose value is a span id (16 hex digits or 8 bytes).
pub(crate) const SPAN_KEYS: &[&str] = &[
    "logging.googleapis.com/spanId",
    "spanId",
    "span_id",
    "span.id",
    "otelSpanID",
];

/// Checks a log record's trace context and, when possible, recovers it.
///
/// Order of precedence (the first valid id wins):
/// 1. the OTLP `trace_id` field: if it is non-empty the record is `present`
///    (16 bytes, not all zero) or `invalid` (anything else); attributes are
///    then not consulted, because an SDK that filled the field is the
///    authority and a malformed field is an instrumentation bug worth
///    reporting as such;
/// 2. record attributes (`TRACE_KEYS`);
/// 3. top-level keys of a map body;
/// 4. keys of maps nested one level inside a map body (a Cloud Logging
///    `jsonPayload`, a `context` or `labels` object);
/// 5. the text of a string body, or of a map body's `message`/`msg`/`textPayload`
///    (`… [trace_id=… span_id=…] …`, see [`crate::trace_text`]), only
///    when no field held an id, valid or not.
///
/// If any candidate is valid the record is `recovered`; if candidates exist
/// but none is valid it is `invalid` (text never makes a record `invalid`:
/// a key in prose whose value is no id is passed over); otherwise
/// `missing`. A value that is empty, `"0"` (what OpenTelemetry Python's logging instrumentation writes
/// when no span is active) or contains whitespace (a key named `trace`
/// holding a stack trace) is not treated as an id at all.
///
/// The span id comes from the same `traceparent`/`X-Cloud-Trace-Context`
/// value when it carries one, else from the first valid `SPAN_KEYS` value;
/// it is only written if `span_id` is empty.
pub fn check_and_recover(record: &mut LogRecord) -> TraceContextState {
    let found = check(LogRef::owned(record));
    if let Some(trace_id) = found.trace_id {
        record.trace_id = trace_id.to_vec();
    }
    if let Some(span_id) = found.span_id {
        record.span_id = span_id.to_vec();
    }
    found.state
}

/// What [`check`] found: the state and, when the record is `recovered`, the
/// ids to write into it (the span id only when the record has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceCheck {
    pub state: TraceContextState,
    pub trace_id: Option<[u8; 16]>,
    pub span_id: Option<[u8; 8]>,
}

/// [`check_and_recover`] without the writing, for a record of either form.
pub fn check(record: LogRef<'_>) -> TraceCheck {
    check_indexed(record, None)
}

/// [`check`], told which of the record's attributes have an id key
/// (`TRACE_KEYS`, `SPAN_KEYS`), in order, each with whether it is a
/// trace key (`None`: not known, every attribute is looked at): the
/// processor knows from its index of the attributes
/// ([`crate::event::AttrIndex::id_attributes`]), and most records have
/// none, so their attributes are not scanned a second time.
pub fn check_indexed(
    record: LogRef<'_>,
    id_attributes: Option<&[Option<(Entry<'_>, bool)>]>,
) -> TraceCheck {
    let state_only = |state| TraceCheck {
        state,
        trace_id: None,
        span_id: None,
    };
    if !record.trace_id.is_empty() {
        return state_only(
            if record.trace_id.len() == 16 && record.trace_id.iter().any(|&b| b != 0) {
                TraceContextState::Present
            } else {
                TraceContextState::Invalid
            },
        );
    }
    let mut scan = Scan::default();
    match id_attributes {
        Some(ids) => {
            for &(entry, is_trace) in ids.iter().flatten() {
                scan.entry(entry, is_trace);
            }
        }
        None => scan.keys(record.attributes),
    }
    if scan.trace.is_none() {
        if let Some(body) = body_kvlist(record.body) {
            scan.keys(body);
            if scan.trace.is_none() {
                for (_, value) in body.iter() {
                    if let Some(nested) = body_kvlist(Some(value)) {
                        scan.keys(nested);
                        if scan.trace.is_some() {
                            break;
                        }
                    }
                }
            }
        }
    }
    if scan.trace.is_none() && !scan.invalid {
        scan.trace = message_text(record.body).and_then(ids_in_text);
    }
    match scan.trace {
        Some((trace, span)) => TraceCheck {
            state: TraceContextState::Recovered,
            trace_id: Some(trace),
            span_id: if record.span_id.is_empty() {
                span.or(scan.span)
            } else {
                None
            },
        },
        None if scan.invalid => state_only(TraceContextState::Invalid),
        None => state_only(TraceContextState::Missing),
    }
}

fn body_kvlist(v: Option<ValueRef<'_>>) -> Option<MapRef<'_>> {
    v?.as_map()
}

/// The text a trace id may be written in, when no field held one: a string
/// body, or the message of a map body, under the keys the event view reads
/// it from (see [`crate::trace_text`]).
fn message_text(body: Option<ValueRef<'_>>) -> Option<&str> {
    match body? {
        ValueRef::Str(s) => Some(s),
        body => {
            let map = body.as_map()?;
            crate::event::MESSAGE_KEYS
                .iter()
                .find_map(|key| match map.get(key) {
                    Some(ValueRef::Str(s)) => Some(s),
                    _ => None,
                })
        }
    }
}

#[derive(Default)]
struct Scan {
    /// The first valid trace id, with the span id carried in the same value.
    trace: Option<([u8; 16], Option<[u8; 8]>)>,
    /// The first valid span id from a span key.
    span: Option<[u8; 8]>,
    /// An id-like value was seen but did not parse.
    invalid: bool,
}

impl Scan {
    fn keys(&mut self, kvs: MapRef<'_>) {
        for entry in kvs.entries() {
            let key = entry.key_bytes();
            if ID_KEY_LENGTHS & length_bit(key.len()) == 0 {
                continue;
            }
            let is_trace = TRACE_KEYS.iter().any(|k| k.as_bytes() == key);
            let is_span = !is_trace && SPAN_KEYS.iter().any(|k| k.as_bytes() == key);
            if is_trace || is_span {
                self.entry(entry, is_trace);
            }
        }
    }

    /// Reads an attribute with a trace id key (`is_trace`) or a span id key.
    fn entry(&mut self, entry: Entry<'_>, is_trace: bool) {
        // A string in its usual encoding (the Cloud Logging trace and
        // span ids) is read without the general value.
        let value = match entry.plain_str() {
            Some(s) => ValueRef::Str(s),
            None => entry.value(),
        };
        if !value.is_set() {
            return;
        }
        if is_trace {
            if self.trace.is_some() {
                return;
            }
            match parse_trace_value(value) {
                Parsed::Absent => {}
                Parsed::Invalid => self.invalid = true,
                Parsed::Valid(t, s) => self.trace = Some((t, s)),
            }
        } else if self.span.is_none() {
            self.span = parse_span_value(value);
        }
    }
}

pub(crate) enum Parsed {
    Absent,
    Invalid,
    Valid([u8; 16], Option<[u8; 8]>),
}

fn parse_trace_value(v: ValueRef<'_>) -> Parsed {
    match v {
        ValueRef::Str(s) => parse_trace_str(s),
        ValueRef::Bytes(b) if b.len() == 16 => match <[u8; 16]>::try_from(b) {
            Ok(id) if id != [0; 16] => Parsed::Valid(id, None),
            _ => Parsed::Invalid,
        },
        ValueRef::Bytes([]) => Parsed::Absent,
        ValueRef::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => parse_trace_str(s),
            Err(_) => Parsed::Invalid,
        },
        // A number or bool under a trace key is an id attempt that cannot be
        // a 128-bit W3C id (e.g. a 64-bit Datadog id).
        ValueRef::Int(0) => Parsed::Absent,
        ValueRef::Int(_) | ValueRef::Double(_) => Parsed::Invalid,
        _ => Parsed::Absent,
    }
}

/// The searcher for `/traces/`, built once: `str::rfind` with a string
/// pattern sets up a two-way searcher on every call, which cost more than
/// the search on these short values.
static TRACES_SEGMENT: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new("/traces/"));

/// What follows the last `/traces/` in `s`, or `s` when there is none.
///
/// In the usual `projects/P/traces/ID` the last `/` ends that segment; a
/// backward byte search for it and one comparison settle the common case,
/// and only other values pay for the substring search.
fn after_last_traces_segment(s: &str) -> &str {
    const SEGMENT: &[u8] = b"/traces/";
    let b = s.as_bytes();
    if let Some(slash) = memchr::memrchr(b'/', b) {
        // No `/traces/` can end after the last `/`: this is the last one.
        if b[..=slash].ends_with(SEGMENT) {
            return &s[slash + 1..];
        }
    }
    match TRACES_SEGMENT.rfind(b) {
        Some(i) => &s[i + SEGMENT.len()..],
        None => s,
    }
}

/// Parses the string forms of a trace id; see [`TRACE_KEYS`].
pub(crate) fn parse_trace_str(s: &str) -> Parsed {
    let s = trim(s);
    if s.is_empty() || s == "0" || has_whitespace(s) {
        return Parsed::Absent;
    }
    // Cloud Logging: projects/PROJECT/traces/TRACE_ID
    let s = if s.starts_with("projects/") {
        after_last_traces_segment(s)
    } else {
        s
    };
    if s.len() >= 55 && s.as_bytes()[2] == b'-' {
        return parse_traceparent(s);
    }
    // `split_once('/')` by a byte search: the string searcher it sets up
    // cost more than the search on a 32-digit id.
    if let Some(slash) = memchr::memchr(b'/', s.as_bytes()) {
        let (trace, rest) = (&s[..slash], &s[slash + 1..]);
        // X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS, SPAN_ID decimal.
        let Some(t) = hex16(trace) else {
            return Parsed::Invalid;
        };
        let span_part = rest.split(';').next().unwrap_or("");
        let span = span_part
            .parse::<u64>()
            .ok()
            .filter(|&n| n != 0)
            .map(u64::to_be_bytes);
        return Parsed::Valid(t, span);
    }
    match hex16(s) {
        Some(t) => Parsed::Valid(t, None),
        None => Parsed::Invalid,
    }
}

/// W3C Trace Context `traceparent`: `VERSION-TRACEID-PARENTID-FLAGS`.
/// Version `ff` is forbidden; version `00` has exactly four fields; higher
/// versions may append fields, which are ignored as the spec requires.
fn parse_traceparent(s: &str) -> Parsed {
    let mut parts = s.split('-');
    let (Some(ver), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Invalid;
    };
    let extra = parts.next().is_some();
    let ok_version =
        ver.len() == 2 && ver.bytes().all(is_lower_hex) && ver != "ff" && !(ver == "00" && extra);
    let ok_flags = flags.len() == 2 && flags.bytes().all(is_lower_hex);
    match (ok_version && ok_flags, hex16(trace), hex8(parent)) {
        (true, Some(t), Some(p)) => Parsed::Valid(t, Some(p)),
        _ => Parsed::Invalid,
    }
}

fn parse_span_value(v: ValueRef<'_>) -> Option<[u8; 8]> {
    match v {
        ValueRef::Str(s) => parse_span_str(s),
        ValueRef::Bytes(b) => <[u8; 8]>::try_from(b).ok().filter(|id| *id != [0; 8]),
        _ => None,
    }
}

/// A span id written as 16 hex digits (either case), not all zero.
pub(crate) fn parse_span_str(s: &str) -> Option<[u8; 8]> {
    hex8(trim(s))
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The value of each byte as a hex digit (either case), or [`NOT_HEX`].
static HEX_VALUE: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => NOT_HEX,
        };
        b += 1;
    }
    t
};
const NOT_HEX: u8 = 0x80;

/// Decodes exactly `2 * N` hex digits (either case) into a non-zero id.
///
/// Without a branch per digit: ids are random, so a digit-or-letter test
/// per character is a coin toss for the branch predictor (the trace check
/// took 7% of the collector's time mostly in those mispredictions). Ids
/// of whole 8-digit words (trace and span ids) are decoded 8 digits at a
/// time in a `u64` ([`hex_word`]); others digit by digit: every digit is
/// looked up, the lookups are or-ed, and one test at the end tells
/// whether any byte was not a hex digit.
fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    if N.is_multiple_of(4) {
        let mut out = [0u8; N];
        let mut any = 0u32;
        for (o, digits) in out.chunks_exact_mut(4).zip(b.chunks_exact(8)) {
            let word = hex_word(digits.try_into().expect("8 digits"))?;
            any |= word;
            o.copy_from_slice(&word.to_le_bytes());
        }
        return (any != 0).then_some(out);
    }
    let mut out = [0u8; N];
    let mut seen = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        seen |= hi | lo;
        *o = (hi << 4) | lo;
    }
    (seen & NOT_HEX == 0 && out != [0; N]).then_some(out)
}

/// Eight hex digits (either case) as the four bytes they spell, in
/// order (as the little-endian bytes of the result); `None` if one is not
/// a hex digit. Each byte of the word is one digit: whether it is one is
/// two range tests per byte done on all eight at once (a byte below 0x80
/// plus `0x80 - lo` has its top bit set exactly when it is at least `lo`,
/// and no sum carries into the next byte), and its value is its low four
/// bits, plus 9 for a letter (bit 6 set). About 30 instructions for eight
/// digits, where a table lookup per digit cost about 8 a digit.
#[inline(always)]
fn hex_word(digits: [u8; 8]) -> Option<u32> {
    const LANES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Top bit of each byte set when that byte (below 0x80) is in lo..=hi.
    let in_range = |w: u64, lo: u8, hi: u8| {
        let at_least_lo = w + LANES * u64::from(0x80 - lo);
        let above_hi = w + LANES * u64::from(0x7f - hi);
        at_least_lo & !above_hi & HIGH
    };
    let w = u64::from_le_bytes(digits);
    if w & HIGH != 0 {
        return None;
    }
    let digit = in_range(w, b'0', b'9');
    let letter = in_range(w | (LANES * 0x20), b'a', b'f');
    if digit | letter != HIGH {
        return None;
    }
    let values = (w & (LANES * 0x0f)) + ((w >> 6) & LANES) * 9;
    // Digit 2i (the high nibble of byte i) is byte 2i of the word.
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = ((values & EVEN) << 4) | ((values >> 8) & EVEN);
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((pairs | (pairs >> 16)) & 0xffff_ffff) as u32)
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    hex_id::<16>(s)
}

fn hex8(s: &str) -> Option<[u8; 8]> {
    hex_id::<8>(s)
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// `processors: gardener: trace_context:` in the collector config.
///
/// ```yaml
/// trace_context:
///   enabled: true
///   missing_ratio_threshold: 0.2   # optional SLI: share of logs without trace id per service
///   orphan_window_secs: 120
///   orphan_capacity: 100000
///   id_consistency:
///     - name: run_thread
///       left:  { attribute: run_id,    regex: '^run_(?P<id>[a-z]+_\d+)' }
///       right: { attribute: thread_id, regex: '(?P<id>[a-z]+_\d+)_\d+_[0-9a-f]{8}$' }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceContextConfig {
    /// Run the check at all (default true).
    pub enabled: bool,
    /// When set, the share of `missing` records per service is evaluated as
    /// an SLI with this threshold (off by default: many services log outside
    /// any request, so a sensible threshold is service-specific).
    pub missing_ratio_threshold: Option<f64>,
    /// How long a log's trace id may wait for a span with the same id before
    /// the log counts as an orphan (default 120 s: batch span processors
    /// export every 5 s, long requests end minutes after their first log).
    pub orphan_window_secs: u64,
    /// Capacity of the orphan detector: pending log trace ids and span trace
    /// ids per time bucket (see [`crate::orphans`]). `0` disables orphan
    /// detection.
    pub orphan_capacity: usize,
    /// Pairs of ids that must agree; none by default.
    pub id_consistency: Vec<IdConsistencyRule>,
}

impl Default for TraceContextConfig {
    fn default() -> Self {
        TraceContextConfig {
            enabled: true,
            missing_ratio_threshold: None,
            orphan_window_secs: 120,
            orphan_capacity: 100_000,
            id_consistency: Vec::new(),
        }
    }
}

/// Name of the SLI that [`TraceContextConfig::missing_ratio_sli`] defines.
pub const MISSING_RATIO_SLI: &str = "trace_context_missing";

impl TraceContextConfig {
    /// The `missing_ratio_threshold` as an SLI definition, to be added to the
    /// SLI config's `definitions` (unless the user defined one of the same
    /// name): events are log records, bad ones carry
    /// `gardener.trace_context = missing`. It relies on the caller building
    /// the [`crate::sli::SliEvent`] from the record's attributes *after*
    /// the trace-context attribute was added, so no new field is needed in
    /// the event and the exported counters follow the usual
    /// `gardener_sli_*{sli="trace_context_missing"}` shape.
    pub fn missing_ratio_sli(&self) -> Option<(String, crate::sli::SliDefinitionConfig)> {
        let threshold = self.missing_ratio_threshold?;
        if !self.enabled {
            return None;
        }
        let yaml = format!(
            "description: Log records without any trace context.\n\
             threshold: {threshold}\n\
             events: [ {{ signal: log }} ]\n\
             bad: [ {{ signal: log, attributes: [ {{ key: {key}, equals: missing }} ] }} ]\n",
            key = crate::attributes::TRACE_CONTEXT,
        );
        let def = serde_yaml_ng::from_str(&yaml).expect("generated SLI definition parses");
        Some((MISSING_RATIO_SLI.to_string(), def))
    }
}

/// One ID-consistency rule: two ids that must agree on the part captured by
/// their regexes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdConsistencyRule {
    /// Reported as the violation name (e.g. a counter label).
    pub name: String,
    pub left: IdSource,
    pub right: IdSource,
}

/// Where one side of an [`IdConsistencyRule`] comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSource {
    /// Attribute key; also looked up in a map body (top level, then one
    /// level deep) by [`IdConsistency::violations_in_record`].
    pub attribute: String,
    /// The comparable part: the named group `id` if the regex has one, else
    /// group 1, else the whole match. Without a regex the whole value.
    #[serde(default)]
    pub regex: Option<String>,
}

/// Errors compiling [`IdConsistencyRule`]s; `index` is the rule's place in
/// the list, so that an error can point at it.
#[derive(Debug, thiserror::Error)]
pub enum IdConsistencyError {
    #[error("id_consistency rule `{rule}`: invalid regex for `{attribute}`: {source}")]
    Regex {
        index: usize,
        /// `left` or `right`.
        side: &'static str,
        rule: String,
        attribute: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("id_consistency rule `{name}`: duplicate rule name")]
    DuplicateName { index: usize, name: String },
    #[error("id_consistency rule with an empty name")]
    EmptyName { index: usize },
}

impl IdConsistencyError {
    /// The path of the failing key below `id_consistency`
    /// (`1.left.regex`, `0.name`).
    pub fn key_path(&self) -> String {
        match self {
            IdConsistencyError::Regex { index, side, .. } => format!("{index}.{side}.regex"),
            IdConsistencyError::DuplicateName { index, .. }
            | IdConsistencyError::EmptyName { index } => format!("{index}.name"),
        }
    }
}

struct CompiledSide {
    attribute: String,
    regex: Option<Regex>,
    group: usize,
}

impl CompiledSide {
    fn compile(
        index: usize,
        side: &'static str,
        rule: &str,
        s: &IdSource,
    ) -> Result<Self, IdConsistencyError> {
        let (regex, group) = match &s.regex {
            None => (None, 0),
            Some(r) => {
                let re = Regex::new(r).map_err(|e| IdConsistencyError::Regex {
                    index,
                    side,
                    rule: rule.to_string(),
                    attribute: s.attribute.clone(),
                    source: Box::new(e),
                })?;
                let group = re
                    .capture_names()
                    .position(|n| n == Some("id"))
                    .unwrap_or(if re.captures_len() > 1 { 1 } else { 0 });
                (Some(re), group)
            }
        };
        Ok(CompiledSide {
            attribute: s.attribute.clone(),
            regex,
            group,
        })
    }

    fn extract<'v>(&self, value: &'v str) -> Option<&'v str> {
        match &self.regex {
            None => Some(value),
            Some(re) => re.captures(value)?.get(self.group).map(|m| m.as_str()),
        }
    }
}

/// Compiled ID-consistency rules.
///
/// Applications often derive one id from another (a thread id from a run id)
/// and warn when they disagree; the seeds show such a warning 25+ times an
/// hour:
///
/// > Thread ID mismatch: run_id 'run_chat_1757826886250_1084_b4c0bd77'
/// > extracted to 'chat_1757826886250' but thread_id is
/// > 'thread_test-use_thread_n_chat_1757826886249_1083_5b059ee4'.
///
/// When the ids are attributes, the collector can check the same invariant
/// for every record, including services that do not log the warning:
///
/// ```yaml
/// id_consistency:
///   - name: run_thread
///     left:  { attribute: run_id,    regex: '^run_(?P<id>[a-z]+_\d+)' }
///     right: { attribute: thread_id, regex: '(?P<id>[a-z]+_\d+)_\d+_[0-9a-f]{8}$' }
/// ```
///
/// Here `run_id` yields `chat_1757826886250`, `thread_id` yields
/// `chat_1757826886249`: a violation of `run_thread`. A rule is only violated
/// when both sides are present and both captures match; a missing id is the
/// trace-context check's business, not this one's.
pub struct IdConsistency {
    rules: Vec<(String, CompiledSide, CompiledSide)>,
}

impl IdConsistency {
    /// Compiles the rules; regex errors name the rule and the attribute.
    pub fn new(rules: &[IdConsistencyRule]) -> Result<Self, IdConsistencyError> {
        let mut out: Vec<(String, CompiledSide, CompiledSide)> = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            if r.name.is_empty() {
                return Err(IdConsistencyError::EmptyName { index });
            }
            if out.iter().any(|(n, _, _)| *n == r.name) {
                return Err(IdConsistencyError::DuplicateName {
                    index,
                    name: r.name.clone(),
                });
            }
            out.push((
                r.name.clone(),
                CompiledSide::compile(index, "left", &r.name, &r.left)?,
                CompiledSide::compile(index, "right", &r.name, &r.right)?,
            ));
        }
        Ok(IdConsistency { rules: out })
    }

    /// True if there are no rules (the caller can skip the check).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rule names, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(n, _, _)| n.as_str())
    }

    /// Names of the rules violated by these attributes.
    pub fn violations<'s, 'a>(&'s self, attrs: &'a [KeyValue]) -> impl Iterator<Item = &'s str> + 'a
    where
        's: 'a,
    {
        self.violations_with(move |key| string_attr(MapRef::owned(attrs), key))
    }

    /// Like [`violations`](Self::violations), but also looks ids up in a map
    /// body (top level, then one level deep) when they are not attributes.
    pub fn violations_in_record<'s, 'a>(
        &'s self,
        record: LogRef<'a>,
    ) -> impl Iterator<Item = &'s str> + 'a
    where
        's: 'a,
    {
        self.violations_with(move |key| {
            string_attr(record.attributes, key).or_else(|| {
                let body = body_kvlist(record.body)?;
                string_attr(body, key).or_else(|| {
                    body.iter()
                        .filter_map(|(_, value)| body_kvlist(Some(value)))
                        .find_map(|nested| string_attr(nested, key))
                })
            })
        })
    }

    fn violations_with<'s, 'a, F>(&'s self, lookup: F) -> impl Iterator<Item = &'s str> + 'a
    where
        's: 'a,
        F: Fn(&str) -> Option<&'a str> + 'a,
    {
        self.rules.iter().filter_map(move |(name, l, r)| {
            let lv = l.extract(lookup(&l.attribute)?)?;
            let rv = r.extract(lookup(&r.attribute)?)?;
            (lv != rv).then_some(name.as_str())
        })
    }
}

fn string_attr<'a>(kvs: MapRef<'a>, key: &str) -> Option<&'a str> {
    kvs.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_traces_segment_is_found() {
        for (s, after) in [
            ("projects/p/traces/abc", "abc"),
            ("projects/p/traces/", ""),
            ("projects/p/traces/abc/def", "abc/def"),
            ("projects/traces/x/traces/abc", "abc"),
            ("projects/p/traces/a/traces/b/c", "b/c"),
            ("projects/p/spans/abc", "projects/p/spans/abc"),
            ("projects/p", "projects/p"),
        ] {
            assert_eq!(after_last_traces_segment(s), after, "{s}");
        }
    }

    /// The table-driven decoding against the standard library's, for every
    /// ASCII byte at every position of an id (and a multi-byte character).
    #[test]
    fn hex_ids_decode_as_the_standard_library_does() {
        fn reference(s: &str) -> Option<[u8; 8]> {
            if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let mut out = [0u8; 8];
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
            }
            (out != [0; 8]).then_some(out)
        }
        for base in ["00f067aa0ba902b7", "0000000000000000", "FfEeDdCcBbAa9988"] {
            for pos in 0..16 {
                let replacements = (0u8..128).map(char::from).chain(['é', 'ſ', '\u{212A}']);
                for c in replacements {
                    let mut s: String = base[..pos].into();
                    s.push(c);
                    s.push_str(&base[pos + 1..]);
                    assert_eq!(hex8(&s), reference(&s), "{s:?}");
                }
            }
        }
    }

    /// The word-at-a-time decoding of trace ids against the standard
    /// library's, for every byte value at every position.
    #[test]
    fn trace_ids_decode_as_the_standard_library_does() {
        fn reference(b: &[u8]) -> Option<[u8; 16]> {
            if b.len() != 32 || !b.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let mut out = [0u8; 16];
            for (i, o) in out.iter_mut().enumerate() {
                let pair = std::str::from_utf8(&b[2 * i..2 * i + 2]).ok()?;
                *o = u8::from_str_radix(pair, 16).ok()?;
            }
            (out != [0; 16]).then_some(out)
        }
        let bases = [
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00000000000000000000000000000000",
            "FfEeDdCcBbAa99887766554433221100",
            "0123456789abcdefABCDEF0123456789",
        ];
        for base in bases {
            for pos in 0..32 {
                for byte in 0..=255u8 {
                    let mut b = base.as_bytes().to_vec();
                    b[pos] = byte;
                    let got = std::str::from_utf8(&b).ok().map(hex16);
                    let want = std::str::from_utf8(&b).ok().map(|_| reference(&b));
                    assert_eq!(got, want, "{b:?}");
                }
            }
            // A two-byte character in place of two digits: the same length.
            for pos in 0..31 {
                let s = format!("{}é{}", &base[..pos], &base[pos + 2..]);
                assert_eq!(hex16(&s), None, "{s}");
            }
        }
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(hex8("00f067aa0ba902b7").unwrap()[7], 0xb7);
        assert_eq!(hex8("00F067AA0BA902B7").unwrap()[7], 0xb7);
        assert!(hex8("0000000000000000").is_none());
        assert!(hex8("00f067aa0ba902b").is_none());
        assert!(hex8("00f067aa0ba902bz").is_none());
    }

    #[test]
    fn traceparent_versions() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(matches!(parse_traceparent(ok), Parsed::Valid(_, Some(_))));
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert!(matches!(parse_traceparent(future), Parsed::Valid(..)));
        let v0_extra = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x";
        assert!(matches!(parse_traceparent(v0_extra), Parsed::Invalid));
        let ff = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(matches!(parse_traceparent(ff), Parsed::Invalid));
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert!(matches!(parse_traceparent(zero_parent), Parsed::Invalid));
    }
}
