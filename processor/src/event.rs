//! The event view: one normalized, borrowed view of a log record or a span.
//!
//! Why: the same facts arrive in many shapes (OpenTelemetry semantic
//! convention attributes, legacy attribute names, a string body, a map body,
//! a Cloud Logging `jsonPayload`/`httpRequest`/`labels` shape, span status and
//! `exception` events). Everything downstream (signatures, SLIs, trace checks)
//! reads this one view, so each shape is handled once, here. The view borrows
//! from the record wherever it can; only non-string values are rendered.

use gardener_proto::otlp::common::v1::KeyValue;
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::otlp::trace::v1::{status::StatusCode, Span};
use gardener_proto::view::{Entry, LogRef, MapRef, SpanRef, ValueRef};
use std::borrow::Cow;

use crate::key_summary::KeySummary;

/// Which signal the view came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    Log,
    Span,
}

impl Signal {
    /// `"log"` / `"span"` (the `signal` metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            Signal::Log => "log",
            Signal::Span => "span",
        }
    }
}

/// OpenTelemetry severity numbers used here.
pub mod severity {
    pub const INFO: i32 = 9;
    pub const WARN: i32 = 13;
    pub const ERROR: i32 = 17;
    pub const FATAL: i32 = 21;
}

/// One normalized view of a log record or span.
#[derive(Clone, Debug, PartialEq)]
pub struct EventView<'a> {
    pub signal: Signal,
    /// `service.name` of the resource, `"unknown"` when absent.
    pub service: &'a str,
    /// OTLP severity number; derived from the text (`WARNING`, `ERROR`…)
    /// when the number is unset; spans: ERROR when their status is ERROR,
    /// INFO otherwise.
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub message: Cow<'a, str>,
    pub exception_type: Option<Cow<'a, str>>,
    pub exception_message: Option<Cow<'a, str>>,
    pub stacktrace: Option<Cow<'a, str>>,
    pub http_status: Option<u16>,
    /// HTTP method (`http.request.method`, `http.method`, `httpRequest.requestMethod`).
    pub http_method: Option<Cow<'a, str>>,
    /// Route or URL (`http.route`, `url.path`, `httpRequest.requestUrl`).
    pub http_route: Option<Cow<'a, str>>,
    /// `http_route` is an `http.route` attribute: a route template
    /// (`/api/threads/{id}`), low-cardinality by the semantic conventions,
    /// where a URL path carries the ids themselves.
    pub http_route_is_template: bool,
    pub code_function: Option<Cow<'a, str>>,
    pub code_file: Option<Cow<'a, str>>,
    pub span_kind: Option<i32>,
    pub span_name: Option<&'a str>,
    pub span_status_error: bool,
    /// The span has an `exception` event (OpenTelemetry's
    /// `record_exception`): its exception says which error the span
    /// failed with, where the span's name only says what it was doing.
    pub span_exception_event: bool,
    pub time_unix_nano: u64,
    /// Raw trace and span ids (empty when absent).
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    /// The summary of the record's (or span's) own attribute keys, made
    /// while indexing them; `None` when the view was built without them.
    pub attribute_keys: Option<KeySummary>,
}

/// Longest `service.name` the collector uses, in bytes. Longer names are
/// cut (at a character boundary) everywhere the name is used: metric label
/// values, signature tables, fingerprints. A 2 MiB name must not become a
/// 2 MiB Prometheus label.
pub const MAX_SERVICE_NAME: usize = 256;

/// `service.name` of a resource, `"unknown"` when absent or not a string,
/// cut to [`MAX_SERVICE_NAME`] bytes.
pub fn service_name(resource: Option<&Resource>) -> &str {
    service_name_of(MapRef::resource(resource))
}

/// [`service_name`] from the resource's attributes.
pub fn service_name_of(resource: MapRef<'_>) -> &str {
    match resource.get("service.name") {
        Some(ValueRef::Str(s)) if !s.is_empty() => truncate(s, MAX_SERVICE_NAME),
        _ => "unknown",
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Severity number from a severity text, for records that only carry text
/// (Cloud Logging `WARNING`, Python `CRITICAL`, …). 0 when unknown.
pub fn severity_from_text(text: &str) -> i32 {
    let t = text.trim();
    let eq = |s: &str| t.eq_ignore_ascii_case(s);
    if eq("TRACE") {
        1
    } else if eq("DEBUG") {
        5
    } else if eq("INFO") || eq("NOTICE") || eq("DEFAULT") {
        severity::INFO
    } else if eq("WARN") || eq("WARNING") {
        severity::WARN
    } else if eq("ERROR") || eq("ERR") {
        severity::ERROR
    } else if eq("CRITICAL") || eq("FATAL") || eq("ALERT") || eq("EMERGENCY") || eq("PANIC") {
        severity::FATAL
    } else {
        0
    }
}

/// The attribute `key`, if present.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<ValueRef<'a>> {
    MapRef::owned(attrs).get(key)
}

/// A value as text: strings borrowed, scalars rendered. Maps and arrays are
/// not text.
///
/// Always inlined, numbers rendered out of line: returned from a call, the
/// text went through memory in narrow stores that the caller read back 16
/// bytes at a time, which store forwarding cannot serve (a stall on every
/// message read).
#[inline(always)]
pub fn as_text(v: ValueRef<'_>) -> Option<Cow<'_, str>> {
    match v {
        ValueRef::Str(s) => Some(Cow::Borrowed(s)),
        ValueRef::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        ValueRef::Int(_) | ValueRef::Double(_) => Some(Cow::Owned(number_text(v))),
        _ => None,
    }
}

/// Whether [`as_text`] gives `v` a text (without rendering it).
fn has_text(v: ValueRef<'_>) -> bool {
    matches!(
        v,
        ValueRef::Str(_) | ValueRef::Bool(_) | ValueRef::Int(_) | ValueRef::Double(_)
    )
}

/// The text of an int or double value ("" for any other).
#[inline(never)]
fn number_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Int(i) => i.to_string(),
        ValueRef::Double(d) => d.to_string(),
        _ => String::new(),
    }
}

fn as_status(v: ValueRef<'_>) -> Option<u16> {
    let n = match v {
        ValueRef::Int(i) => i,
        ValueRef::Double(d) => d as i64,
        ValueRef::Str(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (100..=599).contains(&n).then_some(n as u16)
}

/// The attributes the view reads, found in one pass over a record's
/// attributes instead of one scan per key: slot `i` holds the value of the
/// first attribute whose key is `ATTR_KEYS``[i]`. Lookups then follow each
/// field's key order, exactly as a scan per key would (the first key that is
/// present with a value that has text wins; an empty text is no value).
pub struct AttrIndex<'a> {
    slots: [Option<Entry<'a>>; ATTR_KEYS.len()],
    keys: KeySummary,
    /// The first [`ID_ATTRIBUTES`] attributes whose key is one the trace
    /// check reads ([`crate::trace_context`]'s trace and span id keys), in
    /// order, each with whether it is a trace key; and how many there are
    /// (saturating). The check reads these instead of scanning every
    /// attribute again, and nothing when there are none (most records).
    ids: [Option<(Entry<'a>, bool)>; ID_ATTRIBUTES],
    id_count: u8,
}

/// Id attributes an [`AttrIndex`] keeps (a record has one or two: the
/// Cloud Logging trace and span id); with more, the trace check scans.
const ID_ATTRIBUTES: usize = 2;

const EXCEPTION_TYPE: usize = 0;
const EXCEPTION_MESSAGE: usize = 1;
const EXCEPTION_STACKTRACE: usize = 2;
const ERROR_TYPE: usize = 3;
const HTTP_RESPONSE_STATUS_CODE: usize = 4;
const HTTP_STATUS_CODE: usize = 5;
const HTTP_REQUEST_METHOD: usize = 6;
const HTTP_METHOD: usize = 7;
const HTTP_ROUTE: usize = 8;
const URL_PATH: usize = 9;
const HTTP_TARGET: usize = 10;
const CODE_FUNCTION_NAME: usize = 11;
const CODE_FUNCTION: usize = 12;
const CODE_FILE_PATH: usize = 13;
const CODE_FILEPATH: usize = 14;
const MESSAGE: usize = 15;
const MSG: usize = 16;
const TEXT_PAYLOAD: usize = 17;

/// The keys of [`AttrIndex`] slots, by slot.
const ATTR_KEYS: [&str; 18] = [
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "error.type",
    "http.response.status_code",
    "http.status_code",
    "http.request.method",
    "http.method",
    "http.route",
    "url.path",
    "http.target",
    "code.function.name",
    "code.function",
    "code.file.path",
    "code.filepath",
    "message",
    "msg",
    "textPayload",
];

/// What [`attr_slot`] says of a trace id key and of a span id key of the
/// trace check (not slots: the view does not read them).
const TRACE_ID_KEY: usize = ATTR_KEYS.len();
const SPAN_ID_KEY: usize = ATTR_KEYS.len() + 1;

/// The slot of `key`, or [`TRACE_ID_KEY`] or [`SPAN_ID_KEY`]. A match on byte strings compiles to a
/// switch on the length and comparisons of constant size, inlined: the
/// attributes the view does not read cost a comparison of lengths, or a
/// few loads.
#[inline]
fn attr_slot(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"exception.type" => EXCEPTION_TYPE,
        b"exception.message" => EXCEPTION_MESSAGE,
        b"exception.stacktrace" => EXCEPTION_STACKTRACE,
        b"error.type" => ERROR_TYPE,
        b"http.response.status_code" => HTTP_RESPONSE_STATUS_CODE,
        b"http.status_code" => HTTP_STATUS_CODE,
        b"http.request.method" => HTTP_REQUEST_METHOD,
        b"http.method" => HTTP_METHOD,
        b"http.route" => HTTP_ROUTE,
        b"url.path" => URL_PATH,
        b"http.target" => HTTP_TARGET,
        b"code.function.name" => CODE_FUNCTION_NAME,
        b"code.function" => CODE_FUNCTION,
        b"code.file.path" => CODE_FILE_PATH,
        b"code.filepath" => CODE_FILEPATH,
        b"message" => MESSAGE,
        b"msg" => MSG,
        b"textPayload" => TEXT_PAYLOAD,
        // trace_context::TRACE_KEYS and SPAN_KEYS (a test keeps them equal).
        b"logging.googleapis.com/trace"
        | b"trace"
        | b"trace_id"
        | b"traceId"
        | b"trace.id"
        | b"traceparent"
        | b"otelTraceID"
        | b"x-cloud-trace-context"
        | b"X-Cloud-Trace-Context" => TRACE_ID_KEY,
        b"logging.googleapis.com/spanId" | b"spanId" | b"span_id" | b"span.id" | b"otelSpanID" => {
            SPAN_ID_KEY
        }
        _ => return None,
    })
}

impl<'a> AttrIndex<'a> {
    /// The index of a list of attributes.
    pub fn new(attrs: MapRef<'a>) -> Self {
        let mut index = Self::empty();
        for entry in attrs.entries() {
            index.offer(entry);
        }
        index
    }

    /// The index of no attributes, to [`offer`](Self::offer) them to one
    /// by one.
    pub fn empty() -> Self {
        AttrIndex {
            slots: [None; ATTR_KEYS.len()],
            keys: KeySummary::default(),
            ids: [None; ID_ATTRIBUTES],
            id_count: 0,
        }
    }

    /// Indexes the next attribute of the list.
    #[inline]
    pub fn offer(&mut self, entry: Entry<'a>) {
        self.keys.add(entry.key_bytes());
        if let Some(i) = attr_slot(entry.key_bytes()) {
            match self.slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(entry),
                Some(Some(_)) => {}
                // TRACE_ID_KEY or SPAN_ID_KEY, past the last slot.
                None => self.offer_id(entry, i == TRACE_ID_KEY),
            }
        }
    }

    #[cold]
    fn offer_id(&mut self, entry: Entry<'a>, trace: bool) {
        if let Some(id) = self.ids.get_mut(usize::from(self.id_count)) {
            *id = Some((entry, trace));
        }
        self.id_count = self.id_count.saturating_add(1);
    }

    /// False when no attribute has a trace or span id key of the trace
    /// check (`trace_context::check_indexed`).
    pub fn has_id_keys(&self) -> bool {
        self.id_count > 0
    }

    /// The attributes with a trace or span id key, in order, each with
    /// whether it is a trace key; `None` when there are more than the
    /// index keeps (the check then scans them all).
    pub fn id_attributes(&self) -> Option<&[Option<(Entry<'a>, bool)>]> {
        self.ids.get(..usize::from(self.id_count))
    }

    /// The first of `keys` whose value has text; `None` when that text is
    /// empty. A string in its usual encoding is read without the general
    /// value ([`Entry::plain_str`]).
    fn text(&self, keys: &[usize]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|&k| {
                self.slots[k].and_then(|e| match e.plain_str() {
                    Some(s) => Some(Cow::Borrowed(s)),
                    None => as_text(e.value()),
                })
            })
            .filter(|s| !s.is_empty())
    }

    /// The route or URL (`http.route`, else `url.path`, else
    /// `http.target`), and whether it is the `http.route` (a template).
    fn route(&self) -> Option<(Cow<'a, str>, bool)> {
        let route = self.text(&[HTTP_ROUTE, URL_PATH, HTTP_TARGET])?;
        // The first key with text wins: the route when it has text.
        let is_template = self.slots[HTTP_ROUTE].is_some_and(|e| has_text(e.value()));
        Some((route, is_template))
    }

    /// The first status key whose value is a status. An int in its usual
    /// encoding (a request log's) is read without the general value
    /// ([`Entry::plain_int`]), with the same range test as [`as_status`].
    fn status(&self) -> Option<u16> {
        [HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE]
            .iter()
            .find_map(|&k| {
                self.slots[k].and_then(|e| match e.plain_int() {
                    Some(n) => (100..=599).contains(&n).then_some(n as u16),
                    None => as_status(e.value()),
                })
            })
    }
}

/// The same lookup as [`AttrIndex::text`] for a list scanned once (span
/// events): a scan per key.
fn text_attr<'a>(attrs: MapRef<'a>, keys: &[&str]) -> Option<Cow<'a, str>> {
    keys.iter()
        .find_map(|k| attrs.get(k).and_then(as_text))
        .filter(|s| !s.is_empty())
}

/// The keys of a map body that hold its message, in order of preference.
pub(crate) const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "textPayload"];

impl<'a> EventView<'a> {
    /// The view of a decoded log record.
    pub fn from_log(resource: Option<&'a Resource>, record: &'a LogRecord) -> Self {
        Self::from_log_ref(MapRef::resource(resource), LogRef::owned(record))
    }

    /// The view of a log record, decoded or encoded, and its resource's
    /// attributes.
    pub fn from_log_ref(resource: MapRef<'a>, record: LogRef<'a>) -> Self {
        Self::from_log_parts(service_name_of(resource), record, |_| true)
    }

    /// [`from_log_ref`](Self::from_log_ref) with the service name found
    /// beforehand ([`service_name_of`] the resource, once for all its
    /// records), and with the facts only signing reads (exception, stack
    /// trace, HTTP method and route, code location) left `None` unless
    /// `signed` says the view will be signed. `signed` sees every other
    /// fact. Most records are not signed, and reading those attributes was
    /// a third of the view's cost.
    pub fn from_log_parts(
        service: &'a str,
        record: LogRef<'a>,
        signed: impl FnOnce(&EventView<'a>) -> bool,
    ) -> Self {
        let attrs = AttrIndex::new(record.attributes);
        let mut view = Self::log_fields(service, record, &attrs);
        view.complete_log(record, &attrs, signed);
        view
    }

    /// The first step of [`from_log_parts`](Self::from_log_parts), for a
    /// caller that indexed the record's attributes (`attrs`) beforehand,
    /// e.g. while they were split: the fields read straight off the
    /// record. Such a caller writes
    /// `let mut view = EventView::log_fields(…); view.complete_log(…);`:
    /// the view is then built where it stays, where returning a finished
    /// view from one function copied its 328 bytes (a `memcpy` per record).
    #[inline]
    pub fn log_fields(service: &'a str, record: LogRef<'a>, attrs: &AttrIndex<'a>) -> Self {
        let mut severity_number = record.severity_number;
        if severity_number == 0 {
            severity_number = severity_from_text(record.severity_text);
        }
        EventView {
            signal: Signal::Log,
            service,
            severity_number,
            severity_text: record.severity_text,
            message: Cow::Borrowed(""),
            exception_type: None,
            exception_message: None,
            stacktrace: None,
            http_status: attrs.status(),
            http_method: None,
            http_route: None,
            http_route_is_template: false,
            code_function: None,
            code_file: None,
            span_kind: None,
            span_name: None,
            span_status_error: false,
            span_exception_event: false,
            time_unix_nano: if record.time_unix_nano != 0 {
                record.time_unix_nano
            } else {
                record.observed_time_unix_nano
            },
            trace_id: record.trace_id,
            span_id: record.span_id,
            attribute_keys: Some(attrs.keys),
        }
    }

    /// The second step of [`from_log_parts`](Self::from_log_parts), on
    /// a view made by [`log_fields`](Self::log_fields) from the same
    /// record: the message, and the facts of signed records.
    pub fn complete_log(
        &mut self,
        record: LogRef<'a>,
        attrs: &AttrIndex<'a>,
        signed: impl FnOnce(&EventView<'a>) -> bool,
    ) {
        if let Some(body) = record.body {
            match body.as_map() {
                Some(map) => self.fill_from_map(map),
                None => {
                    if let Some(t) = as_text(body) {
                        self.message = t;
                    }
                }
            }
        }
        if self.message.is_empty() {
            if let Some(m) = attrs.text(&[MESSAGE, MSG, TEXT_PAYLOAD]) {
                self.message = m;
            }
        }
        if signed(self) {
            // Attributes win over what a map body said (which only filled
            // what was still unset).
            let prefer = |field: &mut Option<Cow<'a, str>>, keys: &[usize]| {
                if let Some(t) = attrs.text(keys) {
                    *field = Some(t);
                }
            };
            prefer(&mut self.exception_type, &[EXCEPTION_TYPE]);
            prefer(&mut self.exception_message, &[EXCEPTION_MESSAGE]);
            prefer(&mut self.stacktrace, &[EXCEPTION_STACKTRACE]);
            prefer(&mut self.http_method, &[HTTP_REQUEST_METHOD, HTTP_METHOD]);
            if let Some((route, is_template)) = attrs.route() {
                self.http_route = Some(route);
                self.http_route_is_template = is_template;
            }
            prefer(
                &mut self.code_function,
                &[CODE_FUNCTION_NAME, CODE_FUNCTION],
            );
            prefer(&mut self.code_file, &[CODE_FILE_PATH, CODE_FILEPATH]);
        } else {
            // What a map body said is dropped too: a view has all of these
            // facts or none.
            self.exception_type = None;
            self.exception_message = None;
            self.stacktrace = None;
            self.http_method = None;
            self.http_route = None;
            self.http_route_is_template = false;
            self.code_function = None;
            self.code_file = None;
        }
    }

    /// Facts from a map body: a structured log or a Cloud Logging entry
    /// (`jsonPayload`, `httpRequest`, `labels`, `severity`).
    fn fill_from_map(&mut self, map: MapRef<'a>) {
        // A whole LogEntry: look inside jsonPayload, too.
        let payload = map.get("jsonPayload").and_then(ValueRef::as_map);
        for m in [Some(map), payload].into_iter().flatten() {
            if self.message.is_empty() {
                if let Some(t) = MESSAGE_KEYS.iter().find_map(|k| m.get(k).and_then(as_text)) {
                    self.message = t;
                }
            }
            if let Some(err) = m.get("error") {
                match err.as_map() {
                    Some(e) => {
                        if self.exception_type.is_none() {
                            self.exception_type = ["type", "name", "kind"]
                                .iter()
                                .find_map(|k| e.get(k).and_then(as_text));
                        }
                        if self.exception_message.is_none() {
                            self.exception_message = e.get("message").and_then(as_text);
                        }
                        if self.stacktrace.is_none() {
                            self.stacktrace = ["stack", "stack_trace", "stacktrace"]
                                .iter()
                                .find_map(|k| e.get(k).and_then(as_text));
                        }
                    }
                    None => {
                        if self.exception_message.is_none() {
                            self.exception_message = as_text(err);
                        }
                    }
                }
            }
            if self.stacktrace.is_none() {
                self.stacktrace = [
                    "stack_trace",
                    "stacktrace",
                    "exception",
                    "traceback",
                    "exc_info",
                ]
                .iter()
                .find_map(|k| m.get(k).and_then(as_text))
                .filter(|s| s.contains('\n'));
            }
            if let Some(h) = m.get("httpRequest").and_then(ValueRef::as_map) {
                if self.http_method.is_none() {
                    self.http_method = h.get("requestMethod").and_then(as_text);
                }
                if self.http_route.is_none() {
                    self.http_route = h.get("requestUrl").and_then(as_text);
                }
            }
            if self.http_status.is_none() {
                self.http_status = m
                    .get("httpRequest")
                    .and_then(ValueRef::as_map)
                    .and_then(|h| h.get("status"))
                    .and_then(as_status)
                    .or_else(|| {
                        ["status", "status_code"]
                            .iter()
                            .find_map(|k| m.get(k).and_then(as_status))
                    });
            }
            if let Some(labels) = m.get("labels").and_then(ValueRef::as_map) {
                if self.code_function.is_none() {
                    self.code_function = labels.get("function").and_then(as_text);
                }
                if self.code_file.is_none() {
                    self.code_file = labels.get("module").and_then(as_text);
                }
            }
            if self.severity_number == 0 {
                if let Some(s) = m.get("severity").and_then(as_text) {
                    self.severity_number = severity_from_text(&s);
                }
            }
        }
    }

    /// The view of a span: its status message (or name) is the message, an
    /// `exception` event supplies exception facts.
    pub fn from_span(resource: Option<&'a Resource>, span: &'a Span) -> Self {
        let span = SpanRef::owned(span);
        let attrs = AttrIndex::new(span.attributes);
        let mut view = EventView::span_fields(service_name(resource), span, &attrs);
        view.complete_span(&attrs, |_| true);
        view
    }

    /// The view of a span, decoded or encoded, of the service `service`,
    /// with its attributes indexed beforehand (`attrs`, the [`AttrIndex`]
    /// of `span.attributes`), and with the facts only signing reads beyond
    /// the exception (HTTP method and route, code location) left `None`:
    /// [`complete_span`](Self::complete_span) adds them to a view that
    /// will be signed, as [`complete_log`](Self::complete_log) does.
    pub fn span_fields(service: &'a str, span: SpanRef<'a>, attrs: &AttrIndex<'a>) -> Self {
        let status_error = span.status_code == StatusCode::Error as i32;
        let mut v = EventView {
            signal: Signal::Span,
            service,
            severity_number: if status_error {
                severity::ERROR
            } else {
                severity::INFO
            },
            severity_text: if status_error { "ERROR" } else { "" },
            message: Cow::Borrowed(if span.status_message.is_empty() {
                span.name
            } else {
                span.status_message
            }),
            exception_type: attrs.text(&[EXCEPTION_TYPE, ERROR_TYPE]),
            exception_message: attrs.text(&[EXCEPTION_MESSAGE]),
            stacktrace: attrs.text(&[EXCEPTION_STACKTRACE]),
            http_status: attrs.status(),
            http_method: None,
            http_route: None,
            http_route_is_template: false,
            code_function: None,
            code_file: None,
            span_kind: Some(span.kind),
            span_name: Some(span.name),
            span_status_error: status_error,
            span_exception_event: span.exception.is_some(),
            time_unix_nano: span.start_time_unix_nano,
            trace_id: span.trace_id,
            span_id: span.span_id,
            attribute_keys: Some(attrs.keys),
        };
        if let Some(event) = span.exception {
            if v.exception_type.is_none() {
                v.exception_type = text_attr(event, &["exception.type"]);
            }
            if v.exception_message.is_none() {
                v.exception_message = text_attr(event, &["exception.message"]);
            }
            if v.stacktrace.is_none() {
                v.stacktrace = text_attr(event, &["exception.stacktrace"]);
            }
        }
        v
    }

    /// The second step for a span, on a view made by
    /// [`span_fields`](Self::span_fields) from the span `attrs` indexes:
    /// the HTTP method and route and the code location, when `signed` says
    /// the view will be signed (it sees every other fact). Most spans are
    /// not signed; reading these was a fifth of the view's cost.
    pub fn complete_span(
        &mut self,
        attrs: &AttrIndex<'a>,
        signed: impl FnOnce(&EventView<'a>) -> bool,
    ) {
        if signed(self) {
            self.http_method = attrs.text(&[HTTP_REQUEST_METHOD, HTTP_METHOD]);
            if let Some((route, is_template)) = attrs.route() {
                self.http_route = Some(route);
                self.http_route_is_template = is_template;
            }
            self.code_function = attrs.text(&[CODE_FUNCTION_NAME, CODE_FUNCTION]);
            self.code_file = attrs.text(&[CODE_FILE_PATH, CODE_FILEPATH]);
        }
    }

    /// True when the span has an `exception` event or exception attributes.
    pub fn has_exception(&self) -> bool {
        self.exception_type.is_some()
            || self.exception_message.is_some()
            || self.stacktrace.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_text() {
        let text = |v| as_text(v).map(Cow::into_owned);
        assert_eq!(text(ValueRef::Str("GET")).as_deref(), Some("GET"));
        assert_eq!(text(ValueRef::Int(-42)).as_deref(), Some("-42"));
        assert_eq!(text(ValueRef::Double(1.5)).as_deref(), Some("1.5"));
        assert_eq!(text(ValueRef::Bool(true)).as_deref(), Some("true"));
        assert_eq!(text(ValueRef::Bytes(b"x")), None);
        assert_eq!(text(ValueRef::Empty), None);
    }

    #[test]
    fn long_service_names_are_cut_at_a_character_boundary() {
        let name = format!("{}é{}", "a".repeat(MAX_SERVICE_NAME - 1), "b".repeat(1000));
        let resource = Resource {
            attributes: vec![gardener_proto::build::key_value(
                "service.name",
                gardener_proto::build::string(&name),
            )],
            ..Default::default()
        };
        assert_eq!(service_name(Some(&resource)), &name[..MAX_SERVICE_NAME - 1]);
        assert_eq!(truncate("é", 1), "");
        assert_eq!(truncate("short", MAX_SERVICE_NAME), "short");
    }
    use gardener_proto::otlp::common::v1::AnyValue;
    use gardener_proto::otlp::trace::v1::{span::Event, Status};

    use gardener_proto::build::{
        int as i, key_value as kv, kvlist as map, service_resource as resource, string as s,
    };

    #[test]
    fn string_body_and_semconv() {
        let r = resource("api");
        let rec = LogRecord {
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(s("boom")),
            attributes: vec![
                kv("exception.type", s("ValueError")),
                kv("http.response.status_code", i(503)),
                kv("code.function.name", s("handler")),
                kv("code.filepath", s("app.py")),
            ],
            ..Default::default()
        };
        let v = EventView::from_log(Some(&r), &rec);
        assert_eq!(v.service, "api");
        assert_eq!(v.message, "boom");
        assert_eq!(v.exception_type.as_deref(), Some("ValueError"));
        assert_eq!(v.http_status, Some(503));
        assert_eq!(v.code_function.as_deref(), Some("handler"));
        assert_eq!(v.code_file.as_deref(), Some("app.py"));
        assert!(matches!(v.message, Cow::Borrowed(_)));
    }

    #[test]
    fn attributes_win_over_a_map_body_and_unsigned_views_skip_signing_facts() {
        let rec = LogRecord {
            severity_number: 17,
            body: Some(map(vec![
                kv("message", s("failed")),
                kv(
                    "error",
                    map(vec![
                        kv("type", s("MapError")),
                        kv("message", s("from map")),
                    ]),
                ),
                kv("httpRequest", map(vec![kv("requestMethod", s("PUT"))])),
                kv("labels", map(vec![kv("function", s("map_fn"))])),
            ])),
            attributes: vec![
                kv("exception.type", s("AttrError")),
                kv("http.request.method", s("GET")),
                kv("code.filepath", s("app.py")),
            ],
            ..Default::default()
        };
        let v = EventView::from_log(None, &rec);
        assert_eq!(v.exception_type.as_deref(), Some("AttrError"));
        assert_eq!(v.exception_message.as_deref(), Some("from map"));
        assert_eq!(v.http_method.as_deref(), Some("GET"));
        assert_eq!(v.code_function.as_deref(), Some("map_fn"));
        assert_eq!(v.code_file.as_deref(), Some("app.py"));

        let mut seen_severity = 0;
        let unsigned = EventView::from_log_parts("svc", LogRef::owned(&rec), |view| {
            seen_severity = view.severity_number;
            false
        });
        assert_eq!(seen_severity, 17);
        assert_eq!(unsigned.message, v.message);
        assert_eq!(unsigned.http_status, v.http_status);
        assert_eq!(unsigned.exception_type, None);
        assert_eq!(unsigned.exception_message, None);
        assert_eq!(unsigned.http_method, None);
        assert_eq!(unsigned.code_function, None);
        assert_eq!(unsigned.code_file, None);
    }

    #[test]
    fn cloud_logging_shape() {
        let rec = LogRecord {
            severity_text: "WARNING".into(),
            body: Some(map(vec![
                kv(
                    "jsonPayload",
                    map(vec![
                        kv("message", s("Session access failed")),
                        kv(
                            "labels",
                            map(vec![
                                kv("function", s("callHandlers")),
                                kv("module", s("logging")),
                            ]),
                        ),
                        kv(
                            "error",
                            map(vec![kv("type", s("KeyError")), kv("message", s("x"))]),
                        ),
                    ]),
                ),
                kv("httpRequest", map(vec![kv("status", i(405))])),
            ])),
            ..Default::default()
        };
        let v = EventView::from_log(None, &rec);
        assert_eq!(v.service, "unknown");
        assert_eq!(v.severity_number, severity::WARN);
        assert_eq!(v.message, "Session access failed");
        assert_eq!(v.code_function.as_deref(), Some("callHandlers"));
        assert_eq!(v.code_file.as_deref(), Some("logging"));
        assert_eq!(v.exception_type.as_deref(), Some("KeyError"));
        assert_eq!(v.http_status, Some(405));
    }

    #[test]
    fn msg_key_and_legacy_status() {
        let rec = LogRecord {
            body: Some(map(vec![
                kv("msg", s("hello")),
                kv("stack_trace", s("a\nb")),
            ])),
            attributes: vec![kv("http.status_code", s("502"))],
            ..Default::default()
        };
        let v = EventView::from_log(None, &rec);
        assert_eq!(v.message, "hello");
        assert_eq!(v.http_status, Some(502));
        assert_eq!(v.stacktrace.as_deref(), Some("a\nb"));
    }

    #[test]
    fn span_with_exception_event() {
        let r = resource("svc");
        let span = Span {
            name: "invoke_agent triage".into(),
            kind: 2,
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }),
            events: vec![Event {
                name: "exception".into(),
                attributes: vec![
                    kv("exception.type", s("TimeoutError")),
                    kv("exception.message", s("took 30s")),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = EventView::from_span(Some(&r), &span);
        assert_eq!(v.signal, Signal::Span);
        assert!(v.span_status_error);
        assert_eq!(v.severity_number, severity::ERROR);
        assert_eq!(v.message, "invoke_agent triage");
        assert_eq!(v.exception_type.as_deref(), Some("TimeoutError"));
        assert_eq!(v.span_kind, Some(2));
        assert!(v.span_exception_event);
        let without = Span {
            events: vec![Event {
                name: "log".into(),
                ..Default::default()
            }],
            ..span
        };
        assert!(!EventView::from_span(Some(&r), &without).span_exception_event);
    }

    /// Which route a view has says whether it is a template: only an
    /// `http.route` with text is one (a `url.path` holds ids).
    #[test]
    fn only_http_route_is_a_route_template() {
        let route = |attributes: Vec<KeyValue>| {
            let span = Span {
                attributes: attributes.clone(),
                ..Default::default()
            };
            let record = LogRecord {
                attributes,
                ..Default::default()
            };
            let span = EventView::from_span(None, &span);
            let log = EventView::from_log(None, &record);
            assert_eq!(span.http_route, log.http_route);
            assert_eq!(span.http_route_is_template, log.http_route_is_template);
            (
                span.http_route.map(Cow::into_owned),
                span.http_route_is_template,
            )
        };
        let with = |route: AnyValue| vec![kv("url.path", s("/t/1")), kv("http.route", route)];
        let route_of = |r: &str| (Some(r.to_string()), true);
        assert_eq!(route(with(s("/t/{id}"))), route_of("/t/{id}"));
        assert_eq!(route(with(i(7))), route_of("7"));
        assert_eq!(route(with(s(""))), (None, false));
        assert_eq!(route(with(map(vec![]))), (Some("/t/1".into()), false));
        assert_eq!(
            route(vec![kv("http.target", s("/t?x"))]),
            (Some("/t?x".into()), false)
        );
        assert_eq!(route(vec![]), (None, false));
    }

    #[test]
    fn every_indexed_key_has_its_slot() {
        for (i, key) in ATTR_KEYS.iter().enumerate() {
            assert_eq!(attr_slot(key.as_bytes()), Some(i), "{key}");
        }
        assert_eq!(attr_slot(b"http.routes"), None);
        assert_eq!(attr_slot(b"service.name"), None);
        assert_eq!(attr_slot(b""), None);
    }

    /// The index flags every id key of the trace check: one it missed would
    /// make the trace check skip a record's trace id.
    #[test]
    fn the_id_keys_are_the_trace_checks() {
        use crate::trace_context::{SPAN_KEYS, TRACE_KEYS};
        for key in TRACE_KEYS {
            assert_eq!(attr_slot(key.as_bytes()), Some(TRACE_ID_KEY), "{key}");
        }
        for key in SPAN_KEYS {
            assert_eq!(attr_slot(key.as_bytes()), Some(SPAN_ID_KEY), "{key}");
        }
        let kv = |k: &str| KeyValue {
            key: k.into(),
            value: Some(gardener_proto::otlp::common::v1::AnyValue {
                value: Some(
                    gardener_proto::otlp::common::v1::any_value::Value::StringValue("v".into()),
                ),
            }),
            ..Default::default()
        };
        let plain = [kv("url.path"), kv("logger"), kv("http.route")];
        assert!(!AttrIndex::new(MapRef::owned(&plain)).has_id_keys());
        let with_span = [kv("url.path"), kv("span_id")];
        assert!(AttrIndex::new(MapRef::owned(&with_span)).has_id_keys());
    }

    /// The trace check reading only the id attributes the index kept
    /// finds what it finds scanning every attribute: in any order, with
    /// valid, invalid and duplicate ids, and past what the index keeps.
    #[test]
    fn the_indexed_trace_check_is_the_full_one() {
        use crate::trace_context::{check, check_indexed};
        let kv = |k: &str, v: &str| kv(k, s(v));
        let trace = "projects/p/traces/0af7651916cd43dd8448eb211c80319c";
        let pool = [
            kv("logging.googleapis.com/trace", trace),
            kv("logging.googleapis.com/spanId", "b7ad6b7169203331"),
            kv("trace_id", "not-an-id"),
            kv("span_id", "00f067aa0ba902b7"),
            kv(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            kv("url.path", "/x"),
            kv("trace", ""),
        ];
        let mut checked = 0;
        for a in 0..pool.len() {
            for b in 0..pool.len() {
                for c in 0..pool.len() {
                    for n in 0..=3 {
                        let attributes: Vec<KeyValue> =
                            [a, b, c][..n].iter().map(|&i| pool[i].clone()).collect();
                        let record = LogRecord {
                            attributes,
                            ..Default::default()
                        };
                        let view = LogRef::owned(&record);
                        let index = AttrIndex::new(view.attributes);
                        assert_eq!(
                            check_indexed(view, index.id_attributes()),
                            check(view),
                            "{:?}",
                            record.attributes
                        );
                        checked += usize::from(index.id_attributes().is_none());
                    }
                }
            }
        }
        assert!(
            checked > 0,
            "some records have more id attributes than kept"
        );
    }

    #[test]
    fn indexed_lookups_keep_key_precedence_not_attribute_order() {
        // `http.route` wins over `url.path` even when it comes later; the
        // first of duplicate keys wins; an empty winner is no value.
        let rec = LogRecord {
            attributes: vec![
                kv("url.path", s("/threads/1")),
                kv("http.route", s("/threads/{id}")),
                kv("http.route", s("/ignored")),
                kv("http.method", s("GET")),
                kv("http.request.method", s("")),
                kv("http.status_code", i(404)),
                kv("code.function", i(7)),
                kv("msg", s("from msg")),
            ],
            ..Default::default()
        };
        let v = EventView::from_log(None, &rec);
        assert_eq!(v.http_route.as_deref(), Some("/threads/{id}"));
        assert_eq!(
            v.http_method, None,
            "the empty preferred key hides the legacy one"
        );
        assert_eq!(v.http_status, Some(404));
        assert_eq!(v.code_function.as_deref(), Some("7"));
        assert_eq!(v.message, "from msg");
    }

    #[test]
    fn severity_text() {
        assert_eq!(severity_from_text("warning"), 13);
        assert_eq!(severity_from_text("CRITICAL"), 21);
        assert_eq!(severity_from_text("nope"), 0);
    }
}
