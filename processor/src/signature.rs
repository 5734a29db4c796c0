//! Error signatures: which records get one, and what it is.
//!
//! A signature is a pure function of the record and the configuration: the
//! masked template, the exception type and the top in-app frames, hashed with
//! xxh3-64. No learned or order-dependent state is involved, so every replica
//! computes the same fingerprint for the same error, in any order, after any
//! restart, and after any redeploy that only moves line numbers; this is what
//! lets per-pod counters add up in the metrics backend.

use crate::event::{severity, EventView, Signal};
use crate::mask;
use crate::memo::{self, Memo};
use crate::rules::{Category, MatchInput, RulePack, RuleSpec, DEFAULT_RULES_YAML};
use crate::stack;
use crate::text::trim;
use serde::Deserialize;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

pub use crate::rules::{Priority, RuleError};

/// Configuration of the signer (the `signatures:` section of the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignatureConfig {
    /// Log records at or above this severity number get a signature
    /// (13 = WARN).
    pub min_severity: i32,
    /// Spans with status ERROR or an `exception` event get a signature.
    pub sign_error_spans: bool,
    /// Records and spans with an HTTP 5xx status get a signature.
    pub sign_http_5xx: bool,
    /// Distinct signatures remembered per service before new ones count as
    /// overflow (bounds label cardinality; see [`SignatureBudget`]).
    pub max_signatures_per_service: usize,
    /// How many in-app frames enter the fingerprint.
    pub top_frames: usize,
    /// Use the built-in rule pack after the user rules.
    pub builtin_rules: bool,
    /// User rules, same shape as the rule pack, tried first.
    pub rules: Vec<RuleSpec>,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            min_severity: severity::WARN,
            sign_error_spans: true,
            sign_http_5xx: true,
            max_signatures_per_service: 500,
            top_frames: 3,
            builtin_rules: true,
            rules: Vec::new(),
        }
    }
}

/// An error signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// xxh3-64 of (service, exception type, template, top frames).
    pub fingerprint: u64,
    /// The masked message (or exception) template.
    pub template: String,
    pub category: Arc<str>,
    pub priority: Priority,
    pub exception_type: Option<String>,
    /// `module:function` of the innermost in-app frames, innermost first.
    pub top_frames: Vec<String>,
}

impl Signature {
    /// The fingerprint as exactly 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

/// The category given to signatures refused by a [`SignatureBudget`].
pub const OVERFLOW_CATEGORY: &str = "overflow";

/// The fingerprint reported for a service's signatures past its budget (the
/// explicit overflow signature): the same for every service and replica.
pub fn overflow_fingerprint() -> u64 {
    xxhash_rust::xxh3::xxh3_64(b"gardener.overflow")
}

/// Computes signatures.
pub struct Signer {
    cfg: SignatureConfig,
    rules: RulePack,
    /// Distinguishes signers in the per-thread memo (never reused).
    id: u64,
}

thread_local! {
    /// Per-thread memo of (fingerprint, category) (see [`crate::memo`]).
    static MEMO: RefCell<Memo<(u64, Category)>> = RefCell::new(Memo::default());
}

impl Signer {
    /// Compiles the rule pack (user rules first, then the built-in pack).
    pub fn new(cfg: &SignatureConfig) -> Result<Signer, RuleError> {
        let mut specs = cfg.rules.clone();
        if cfg.builtin_rules {
            specs.extend(RulePack::parse_yaml(DEFAULT_RULES_YAML)?);
        }
        Ok(Signer {
            cfg: cfg.clone(),
            rules: RulePack::new(&specs)?,
            id: memo::next_owner_id(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SignatureConfig {
        &self.cfg
    }

    /// Whether a record gets a signature: warnings and above, error spans
    /// (status ERROR or an exception event) and HTTP 5xx, as configured.
    pub fn should_sign(&self, view: &EventView) -> bool {
        if self.cfg.sign_http_5xx && view.http_status.is_some_and(|s| (500..=599).contains(&s)) {
            return true;
        }
        match view.signal {
            Signal::Log => view.severity_number >= self.cfg.min_severity,
            Signal::Span => {
                self.cfg.sign_error_spans && (view.span_status_error || view.has_exception())
            }
        }
    }

    /// The signature of a record.
    pub fn sign(&self, view: &EventView) -> Signature {
        // A stack trace from the attributes, else one embedded in the message.
        let from_attr = view.stacktrace.as_deref().and_then(stack::parse_memoized);
        let from_msg = if from_attr.is_none() && stack::may_contain_trace(&view.message) {
            stack::parse_memoized(&view.message)
        } else {
            None
        };
        let (trace, head): (Option<&stack::StackTrace>, &str) = match (&from_attr, &from_msg) {
            (Some(t), _) => (Some(t), &view.message),
            (None, Some(t)) => (Some(t), &view.message[..t.start]),
            (None, None) => (None, &view.message),
        };
        let exception_type: Option<Cow<str>> = view.exception_type.clone().or_else(|| {
            trace
                .and_then(|t| t.exception_type.as_deref())
                .map(Cow::Borrowed)
        });
        let exception_message: Option<&str> = view
            .exception_message
            .as_deref()
            .or_else(|| trace.and_then(|t| t.exception_message.as_deref()));

        // The text to template: the message proper; else the exception; else
        // the span name. A span whose message is its name has a template of
        // its own (its route kept, its exception added).
        let head = trim(head);
        let top_frames = trace
            .map(|t| t.top_frames(self.cfg.top_frames))
            .unwrap_or_default();
        let error_like = view.severity_number >= severity::ERROR
            || view.span_status_error
            || view.http_status.is_some_and(|s| s >= 500);
        if !head.is_empty() && is_named_span(view) {
            let exception = view
                .span_exception_event
                .then(|| exception_text(exception_type.as_deref(), exception_message))
                .flatten();
            return self.finish_template(
                view.service,
                span_name_template(view, head, exception.as_deref()),
                exception_type.as_deref(),
                view.http_status,
                top_frames,
                error_like,
            );
        }
        // The route is appended to the template masked as a route.
        let (text, route) = if !head.is_empty() {
            (Cow::Borrowed(head), None)
        } else {
            without_message(
                view,
                exception_text(exception_type.as_deref(), exception_message),
            )
        };
        let route = route.map(mask::mask_route);
        self.finish(
            view.service,
            &text,
            route.as_deref(),
            exception_type.as_deref(),
            view.http_status,
            top_frames,
            error_like,
        )
    }

    /// The signature of a bare message (the `log-gardener signature` CLI):
    /// the same code path as [`Signer::sign`] for an ERROR log record whose
    /// body is `message`.
    pub fn sign_message(&self, service: &str, message: &str) -> Signature {
        if stack::may_contain_trace(message) {
            let rec = EventView {
                signal: Signal::Log,
                service,
                severity_number: severity::ERROR,
                severity_text: "ERROR",
                message: Cow::Borrowed(message),
                exception_type: None,
                exception_message: None,
                stacktrace: None,
                http_status: None,
                http_method: None,
                http_route: None,
                http_route_is_template: false,
                code_function: None,
                code_file: None,
                span_kind: None,
                span_name: None,
                span_status_error: false,
                span_exception_event: false,
                time_unix_nano: 0,
                trace_id: &[],
                span_id: &[],
                attribute_keys: None,
            };
            return self.sign(&rec);
        }
        self.finish(service, trim(message), None, None, None, Vec::new(), true)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        service: &str,
        text: &str,
        masked_suffix: Option<&str>,
        exception_type: Option<&str>,
        http_status: Option<u16>,
        top_frames: Vec<String>,
        error_like: bool,
    ) -> Signature {
        let mut template = mask_memoized(text);
        if let Some(sfx) = masked_suffix {
            template.push(' ');
            template.push_str(sfx);
        }
        let template = Templated {
            template,
            for_rules: None,
        };
        self.finish_template(
            service,
            template,
            exception_type,
            http_status,
            top_frames,
            error_like,
        )
    }

    /// [`finish`](Self::finish) from the template: categorizes it and
    /// fingerprints it.
    fn finish_template(
        &self,
        service: &str,
        templated: Templated,
        exception_type: Option<&str>,
        http_status: Option<u16>,
        top_frames: Vec<String>,
        error_like: bool,
    ) -> Signature {
        let Templated {
            template,
            for_rules,
        } = templated;
        let compute = || {
            let cat = self.rules.categorize(&MatchInput {
                template: for_rules.as_deref().unwrap_or(&template),
                exception_type,
                http_status,
                frames: &top_frames,
            });
            let fp = fingerprint(service, exception_type, &template, &top_frames);
            (fp, cat)
        };
        let (fingerprint, cat) = memo::with_thread_memo(
            &MEMO,
            self.id,
            |key| {
                key.part(service)
                    .part(&template)
                    .optional(for_rules.as_deref())
                    .optional(exception_type)
                    .status(http_status);
                for frame in &top_frames {
                    key.part(frame);
                }
            },
            compute,
        );
        let priority = if error_like {
            cat.priority
        } else {
            cat.priority.demoted()
        };
        Signature {
            fingerprint,
            template,
            category: cat.name,
            priority,
            exception_type: exception_type.map(str::to_string),
            top_frames,
        }
    }
}

/// An exception as the text of a signature: `Type: message`, or whichever
/// of the two there is (`None` without either).
fn exception_text<'e>(
    exception_type: Option<&'e str>,
    exception_message: Option<&'e str>,
) -> Option<Cow<'e, str>> {
    match (exception_type, exception_message) {
        (Some(t), Some(m)) => Some(Cow::Owned(stack::concat3(t, ": ", m))),
        (Some(t), None) => Some(Cow::Borrowed(t)),
        (None, Some(m)) => Some(Cow::Borrowed(m)),
        (None, None) => None,
    }
}

/// What a record without a message is signed from: its `exception` text,
/// else (a request log, a span) `HTTP {status} {method}` and the route kept
/// apart (the template masks it as a route, the sample shows it as it is),
/// else its span name.
fn without_message<'v>(
    view: &'v EventView<'_>,
    exception: Option<Cow<'v, str>>,
) -> (Cow<'v, str>, Option<&'v str>) {
    if let Some(exception) = exception {
        return (exception, None);
    }
    match view.http_status {
        Some(status) => {
            let mut text = format!("HTTP {status}");
            if let Some(method) = view.http_method.as_deref() {
                text.push(' ');
                text.push_str(method);
            }
            (Cow::Owned(text), view.http_route.as_deref())
        }
        None => (Cow::Borrowed(view.span_name.unwrap_or("")), None),
    }
}

/// A span whose message is its name (no status message).
///
/// Why: a name says what the span was doing (`work`, `POST
/// /api/threads/{id}`), not which error it failed with, and it may hold an
/// `http.route`, which masking a message would mangle. A status message is
/// signed as a log message is.
fn is_named_span(view: &EventView<'_>) -> bool {
    view.signal == Signal::Span && view.span_name == Some(&*view.message)
}

/// A template, and the text the rule pack reads in its place when the two
/// differ (see [`span_name_with_route`]).
struct Templated {
    template: String,
    for_rules: Option<String>,
}

/// The template of a span signed by its name `name` (the trimmed name):
/// the masked name, its `http.route` kept as a route
/// ([`span_name_with_route`]), then the masked `exception` of its
/// exception event, if any: `work: RuntimeError: pool exhausted after
/// <duration>`, `POST /api/threads/{id}`. The exception is masked as a
/// log record's exception is, apart from the name, so that neither
/// changes how the other is masked.
fn span_name_template(view: &EventView<'_>, name: &str, exception: Option<&str>) -> Templated {
    let mut out = span_name_with_route(view, name).unwrap_or_else(|| Templated {
        template: mask_memoized(name),
        for_rules: None,
    });
    if let Some(exception) = exception {
        let masked = mask_memoized(exception);
        for text in std::iter::once(&mut out.template).chain(out.for_rules.as_mut()) {
            text.push_str(": ");
            text.push_str(&masked);
        }
    }
    out
}

/// The template of a span name that holds the span's `http.route` as a
/// word (`POST /api/threads/{id}`, as the HTTP semantic conventions name
/// server spans): the words around it masked, the route kept by
/// [`mask::mask_route`], which leaves a route template's segments as they
/// are (`{id}`, `:id`, words) and masks only ids that an instrumentation
/// put in it by mistake. The rule pack reads the route as `<path>`, as it
/// reads any path of a masked message. `None` without such a route.
///
/// Why: an `http.route` is already a template, low-cardinality by the
/// conventions; masked as message text, `/api/threads/{id}` became
/// `<path>{id}` and distinct routes shared a signature. Its words
/// (`/api/agents`, `/ws`) name an endpoint, not an error: read by the
/// rules, they would move a 5xx from `http_5xx` to `llm_agent` or
/// `websocket_error`. A `url.path` is not a template (it holds the ids):
/// it gets no such treatment.
fn span_name_with_route(view: &EventView<'_>, name: &str) -> Option<Templated> {
    if !view.http_route_is_template {
        return None;
    }
    let route = view.http_route.as_deref()?;
    let at = find_word(name, route)?;
    let (before, after) = (trim(&name[..at]), trim(&name[at + route.len()..]));
    let mut prefix = String::new();
    if !before.is_empty() {
        prefix = mask_memoized(before);
        prefix.push(' ');
    }
    let mut suffix = String::new();
    if !after.is_empty() {
        suffix.push(' ');
        suffix.push_str(&mask_memoized(after));
    }
    let route = mask::mask_route(route);
    Some(Templated {
        template: format!("{prefix}{route}{suffix}"),
        for_rules: Some(format!(
            "{prefix}{}{suffix}",
            mask::Placeholder::Path.as_str()
        )),
    })
}

/// Where `word` first occurs in `text` as a whole word (between the ends
/// of `text` and whitespace); `None` when `word` is empty.
fn find_word(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let end = at + word.len();
        text[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace)
            && text[end..].chars().next().is_none_or(char::is_whitespace)
    })
}

/// The sample of a signed record: its message; for a span signed by its
/// name (`is_named_span`) that has an `exception` event, followed by the
/// exception it is signed with, so that the sample shows which error the
/// signature is: `work: RuntimeError: pool exhausted after 30 s`.
///
/// A record without a message (a Cloud Run request log, a span without a
/// name) is shown by what it is signed from, unmasked: its exception, else
/// `HTTP 500 GET /api/threads/8f3a…`, else its span name. Its sample was
/// empty, and an issue built only from request logs showed none, nor the
/// trace ids that come with samples.
pub fn sample<'v>(view: &'v EventView<'_>) -> Cow<'v, str> {
    if view.message.trim().is_empty() {
        let exception = exception_text(
            view.exception_type.as_deref(),
            view.exception_message.as_deref(),
        );
        return match without_message(view, exception) {
            (text, Some(route)) => Cow::Owned(format!("{text} {route}")),
            (text, None) => text,
        };
    }
    let exception = (view.span_exception_event && is_named_span(view))
        .then(|| {
            exception_text(
                view.exception_type.as_deref(),
                view.exception_message.as_deref(),
            )
        })
        .flatten();
    match exception {
        Some(e) => Cow::Owned(format!("{}: {e}", view.message)),
        None => Cow::Borrowed(&view.message),
    }
}

/// [`mask::mask`], remembered per thread for recent messages.
///
/// Why: many error messages repeat word for word (no ids in them), and
/// masking one costs about 40 instructions a byte, ten times a lookup. The
/// memo compares the whole message ([`crate::memo`]), so the template is
/// exactly `mask(text)`; 512 slots of messages up to 384 bytes (about
/// 250 KiB per thread with their templates).
fn mask_memoized(text: &str) -> String {
    thread_local! {
        static MASKS: RefCell<Memo<String>> = const { RefCell::new(Memo::with_limits(512, 384)) };
    }
    static OWNER: std::sync::LazyLock<u64> = std::sync::LazyLock::new(memo::next_owner_id);
    memo::with_thread_memo(
        &MASKS,
        *OWNER,
        |key| {
            key.part(text);
        },
        || mask::mask(text),
    )
}

/// xxh3-64 over the parts with separators that cannot occur in them (unit
/// and record separators), so that `("ab","c")` and `("a","bc")` differ.
///
/// The parts are concatenated into a reused per-thread buffer and hashed in
/// one shot, which gives the same value as feeding them one by one to a
/// streaming hasher (fingerprints are unchanged) at a fraction of the cost.
pub fn fingerprint(
    service: &str,
    exception_type: Option<&str>,
    template: &str,
    top_frames: &[String],
) -> u64 {
    fn fill(buf: &mut Vec<u8>, parts: (&str, Option<&str>, &str, &[String])) -> u64 {
        let (service, exception_type, template, top_frames) = parts;
        buf.clear();
        buf.extend_from_slice(service.as_bytes());
        buf.push(0x1f);
        buf.extend_from_slice(exception_type.unwrap_or("").as_bytes());
        buf.push(0x1f);
        push_generic(buf, template);
        buf.push(0x1f);
        for f in top_frames {
            buf.extend_from_slice(f.as_bytes());
            buf.push(0x1e);
        }
        xxh3_64(buf)
    }
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let parts = (service, exception_type, template, top_frames);
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            let h = fill(&mut buf, parts);
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new();
            }
            h
        }
        Err(_) => fill(&mut Vec::new(), parts),
    })
}

/// Appends the template with every typed placeholder written as `<*>`: the
/// same value position may hold a host name on one line and an IP on the
/// next, and that must not split a signature. Types stay in the displayed
/// template.
fn push_generic(buf: &mut Vec<u8>, template: &str) {
    let mut rest = template.as_bytes();
    while let Some(p) = find_lt(rest) {
        buf.extend_from_slice(&rest[..p]);
        let tail = &rest[p..];
        // `<name>`: placeholder names are at most 8 bytes.
        let ph_len = tail
            .iter()
            .take(10)
            .position(|&c| c == b'>')
            .filter(|&e| mask::Placeholder::is_placeholder(&tail[..e + 1]))
            .map(|e| e + 1);
        match ph_len {
            Some(n) => {
                buf.extend_from_slice(b"<*>");
                rest = &tail[n..];
            }
            None => {
                buf.push(b'<');
                rest = &tail[1..];
            }
        }
    }
    buf.extend_from_slice(rest);
}

/// The first `<` in `h`, eight bytes at a time.
fn find_lt(h: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(w) = h.get(i..i + 8) {
        let x = u64::from_le_bytes(w.try_into().unwrap()) ^ (LO * b'<' as u64);
        // Exact for the lowest zero byte, which is all we look at.
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    h[i..].iter().position(|&c| c == b'<').map(|p| i + p)
}

/// Bounds label cardinality: remembers up to N signatures per service (and
/// a bounded number of services); later new ones are overflow.
///
/// Which signatures are admitted depends on arrival order, so the budget is
/// only for deciding which label values to export; the fingerprint itself
/// never depends on it.
pub struct SignatureBudget {
    max_per_service: usize,
    max_services: usize,
    seen: HashMap<String, HashSet<u64>>,
}

impl SignatureBudget {
    /// Default bound on the number of services tracked.
    pub const DEFAULT_MAX_SERVICES: usize = 10_000;

    pub fn new(max_per_service: usize) -> Self {
        Self::with_max_services(max_per_service, Self::DEFAULT_MAX_SERVICES)
    }

    pub fn with_max_services(max_per_service: usize, max_services: usize) -> Self {
        SignatureBudget {
            max_per_service,
            max_services,
            seen: HashMap::new(),
        }
    }

    /// True when `fingerprint` is (now) one of the service's remembered
    /// signatures; false when it is overflow.
    pub fn admit(&mut self, service: &str, fingerprint: u64) -> bool {
        if let Some(set) = self.seen.get_mut(service) {
            if set.contains(&fingerprint) {
                return true;
            }
            if set.len() >= self.max_per_service {
                return false;
            }
            set.insert(fingerprint);
            return true;
        }
        if self.seen.len() >= self.max_services || self.max_per_service == 0 {
            return false;
        }
        self.seen
            .entry(service.to_string())
            .or_default()
            .insert(fingerprint);
        true
    }

    /// Signatures remembered for a service.
    pub fn len(&self, service: &str) -> usize {
        self.seen.get(service).map_or(0, HashSet::len)
    }

    /// True when nothing has been admitted.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&SignatureConfig::default()).unwrap()
    }

    #[test]
    fn hex_is_16_lowercase_digits() {
        let s = signer().sign_message("svc", "boom 1");
        let h = s.hex();
        assert_eq!(h.len(), 16);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let z = Signature {
            fingerprint: 1,
            ..s
        };
        assert_eq!(z.hex(), "0000000000000001");
    }

    #[test]
    fn service_is_part_of_the_fingerprint() {
        let s = signer();
        assert_ne!(
            s.sign_message("a", "x").fingerprint,
            s.sign_message("b", "x").fingerprint
        );
        assert_eq!(
            s.sign_message("a", "x 1").fingerprint,
            s.sign_message("a", "x 2").fingerprint
        );
    }

    #[test]
    fn find_lt_finds_the_first() {
        for s in [
            "",
            "<",
            "abcdefgh<",
            "abcdefghijklmnop",
            "a<b<c",
            "abcdefghijklmno<<",
        ] {
            assert_eq!(find_lt(s.as_bytes()), s.find('<'), "{s}");
        }
        for k in 0..40 {
            let mut buf = [b'x'; 40];
            buf[k] = b'<';
            if k + 3 < 40 {
                buf[k + 3] = b'<';
            }
            if k > 0 {
                buf[k - 1] = b'=';
            }
            assert_eq!(find_lt(&buf), Some(k));
            buf[k] = b';';
            assert_eq!(find_lt(&buf), (k + 3 < 40).then_some(k + 3));
        }
    }

    #[test]
    fn memoized_masks_are_masks() {
        let long = format!(
            "Failed to reach 10.0.0.{} after {}",
            7,
            "retrying ".repeat(60)
        );
        let messages = [
            "Failed to load thread history: '_AsyncGeneratorContextManager' object has no attribute 'execute'",
            "Database connection failed: connection to server at \"10.1.2.3\", port 5432 failed",
            "Database connection failed: connection to server at \"10.1.2.4\", port 5432 failed",
            "",
            &long,
        ];
        for _ in 0..3 {
            for m in messages {
                assert_eq!(mask_memoized(m), mask::mask(m), "{m}");
            }
        }
    }

    #[test]
    fn memo_keeps_signatures_exact() {
        let a = signer();
        let b = Signer::new(&SignatureConfig {
            builtin_rules: false,
            rules: RulePack::parse_yaml(
                "rules:\n- {category: mine, priority: P0, keywords: [boom]}\n",
            )
            .unwrap(),
            ..Default::default()
        })
        .unwrap();
        for _ in 0..3 {
            let x = a.sign_message("svc", "redis boom 1");
            let y = b.sign_message("svc", "redis boom 2");
            assert_eq!(&*x.category, "redis");
            assert_eq!(&*y.category, "mine");
            assert_eq!(x.fingerprint, y.fingerprint);
            assert_eq!(
                x.fingerprint,
                fingerprint("svc", None, "redis boom <num>", &[])
            );
            assert_ne!(
                a.sign_message("svd", "redis boom 1").fingerprint,
                x.fingerprint
            );
        }
    }

    #[test]
    fn separators_prevent_ambiguity() {
        assert_ne!(
            fingerprint("ab", None, "c", &[]),
            fingerprint("a", None, "bc", &[])
        );
        assert_ne!(
            fingerprint("a", Some("b"), "c", &[]),
            fingerprint("a", None, "bc", &[])
        );
        assert_eq!(
            fingerprint("a", None, "x <ip> y", &[]),
            fingerprint("a", None, "x <id> y", &[])
        );
        assert_ne!(
            fingerprint("a", None, "x <ip> y", &[]),
            fingerprint("a", None, "x <ipx> y", &[])
        );
    }

    #[test]
    fn config_parses_and_rejects_unknown_fields() {
        let c: SignatureConfig = serde_yaml_ng::from_str(
            "min_severity: 17\nrules:\n- {category: mine, priority: P0, keywords: [boom]}\n",
        )
        .unwrap();
        assert_eq!(c.min_severity, 17);
        assert!(c.sign_error_spans);
        let s = Signer::new(&c).unwrap();
        assert_eq!(&*s.sign_message("x", "big boom").category, "mine");
        assert!(serde_yaml_ng::from_str::<SignatureConfig>("nope: 1").is_err());
    }

    #[test]
    fn user_rules_come_first() {
        let c = SignatureConfig {
            rules: RulePack::parse_yaml(
                "rules:\n- {category: my_redis, priority: P3, keywords: [redis]}\n",
            )
            .unwrap(),
            ..Default::default()
        };
        let s = Signer::new(&c).unwrap();
        assert_eq!(&*s.sign_message("x", "Redis down").category, "my_redis");
        assert_eq!(&*signer().sign_message("x", "Redis down").category, "redis");
    }

    #[test]
    fn budget_bounds_per_service() {
        let mut b = SignatureBudget::new(2);
        assert!(b.admit("a", 1));
        assert!(b.admit("a", 2));
        assert!(!b.admit("a", 3));
        assert!(b.admit("a", 1));
        assert!(b.admit("b", 3));
        assert_eq!(b.len("a"), 2);
        let mut b = SignatureBudget::with_max_services(5, 1);
        assert!(b.admit("a", 1));
        assert!(!b.admit("b", 1));
    }

    use gardener_proto::build::{int, key_value as kv, string};
    use gardener_proto::otlp::common::v1::KeyValue;
    use gardener_proto::otlp::trace::v1::span::Event;
    use gardener_proto::otlp::trace::v1::{status::StatusCode, Span, Status};

    /// An ERROR span named `name` with a status message `status`, these
    /// attributes and, when `exception` is given, an `exception` event
    /// with those attributes (as `record_exception` writes it).
    fn error_span(
        name: &str,
        status: &str,
        attributes: Vec<KeyValue>,
        exception: Option<Vec<(&str, &str)>>,
    ) -> Span {
        Span {
            name: name.into(),
            kind: 2,
            attributes,
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: status.into(),
            }),
            events: exception
                .map(|attributes| Event {
                    name: "exception".into(),
                    attributes: attributes
                        .into_iter()
                        .map(|(k, v)| kv(k, string(v)))
                        .collect(),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn sign_span(span: &Span) -> Signature {
        signer().sign(&EventView::from_span(None, span))
    }

    fn failed_work(exception_type: &str, message: &str) -> Span {
        error_span(
            "work",
            "",
            Vec::new(),
            Some(vec![
                ("exception.type", exception_type),
                ("exception.message", message),
                ("exception.stacktrace", "Traceback (most recent call last):"),
            ]),
        )
    }

    /// A span signed by its name is signed by the exception of its
    /// `exception` event too: distinct exceptions are distinct signatures,
    /// the same one with other values is one, and its category is the
    /// exception's.
    #[test]
    fn spans_signed_by_name_sign_their_exception() {
        let pool = sign_span(&failed_work("RuntimeError", "pool exhausted after 30 s"));
        let pool_again = sign_span(&failed_work("RuntimeError", "pool exhausted after 45 s"));
        let redis = sign_span(&failed_work(
            "RuntimeError",
            "redis unreachable at 10.0.0.5:6379",
        ));
        let value = sign_span(&failed_work("ValueError", "pool exhausted after 30 s"));
        assert_eq!(
            pool.template,
            "work: RuntimeError: pool exhausted after <duration>"
        );
        assert_eq!(pool_again.fingerprint, pool.fingerprint);
        assert_eq!(
            redis.template,
            "work: RuntimeError: redis unreachable at <ip>"
        );
        assert_eq!(&*redis.category, "redis");
        assert_eq!(
            value.template,
            "work: ValueError: pool exhausted after <duration>"
        );
        let distinct: HashSet<u64> = [&pool, &redis, &value]
            .iter()
            .map(|s| s.fingerprint)
            .collect();
        assert_eq!(distinct.len(), 3);

        let refused = sign_span(&failed_work(
            "psycopg2.OperationalError",
            "could not connect to server: Connection refused",
        ));
        assert_eq!(&*refused.category, "database_connection");
        // Only a type, or only a message.
        let only_type = error_span("work", "", vec![], Some(vec![("exception.type", "E")]));
        assert_eq!(sign_span(&only_type).template, "work: E");
        let only_message = error_span("work", "", vec![], Some(vec![("exception.message", "m")]));
        assert_eq!(sign_span(&only_message).template, "work: m");
    }

    /// What A leaves alone: a span with a status message is signed by it,
    /// a span without an exception event by its name, a span whose
    /// exception event says nothing by its name.
    #[test]
    fn other_spans_keep_their_signatures() {
        let exception = || Some(vec![("exception.type", "RuntimeError")]);
        let with_status = sign_span(&error_span(
            "work",
            "pool exhausted after 30 s",
            vec![],
            exception(),
        ));
        assert_eq!(with_status.template, "pool exhausted after <duration>");
        assert_eq!(
            with_status.fingerprint,
            fingerprint(
                "unknown",
                Some("RuntimeError"),
                "pool exhausted after <duration>",
                &[]
            )
        );
        let plain = sign_span(&error_span("work 42", "", vec![], None));
        assert_eq!(plain.template, "work <num>");
        assert_eq!(
            plain.fingerprint,
            fingerprint("unknown", None, "work <num>", &[])
        );
        let empty_event = sign_span(&error_span("work", "", vec![], Some(vec![])));
        assert_eq!(empty_event.template, "work");
        // An exception named by attributes rather than an event: as before.
        let attributes = vec![
            kv("exception.type", string("E")),
            kv("exception.message", string("m")),
        ];
        assert_eq!(
            sign_span(&error_span("work", "", attributes, None)).template,
            "work"
        );
    }

    fn server_span(name: &str, route: Option<&str>, path: Option<&str>) -> Span {
        let mut attributes = vec![
            kv("http.request.method", string("POST")),
            kv("http.response.status_code", int(500)),
        ];
        attributes.extend(route.map(|r| kv("http.route", string(r))));
        attributes.extend(path.map(|p| kv("url.path", string(p))));
        error_span(name, "", attributes, None)
    }

    /// The `http.route` in a server span's name stays as it is: distinct
    /// routes are distinct signatures.
    #[test]
    fn http_routes_in_span_names_are_kept() {
        let threads = "/api/threads/{id}";
        let invoices = "/api/billing/invoices/{id}";
        let run = "/api/agents/{agent_id}/run";
        let mut seen = HashSet::new();
        for route in [
            threads,
            invoices,
            run,
            "/api/websocket/{session}",
            "/users/:id",
            "/",
        ] {
            let name = format!("POST {route}");
            let signed = sign_span(&server_span(&name, Some(route), None));
            assert_eq!(signed.template, name);
            assert!(seen.insert(signed.fingerprint), "{route}");
            // An endpoint's words are no error's: a 5xx stays one.
            assert_eq!(&*signed.category, "http_5xx", "{route}");
        }
        let mut redis = server_span("POST /api/agents/{agent_id}/run", Some(run), None);
        redis.events = failed_work("RuntimeError", "redis unreachable at 10.0.0.5:6379").events;
        let redis = sign_span(&redis);
        assert_eq!(
            redis.template,
            "POST /api/agents/{agent_id}/run: RuntimeError: redis unreachable at <ip>"
        );
        assert_eq!(&*redis.category, "redis");
        // With an exception, and with words after the route.
        let mut failed = server_span("POST /api/threads/{id}", Some(threads), None);
        failed.events = failed_work("RuntimeError", "pool exhausted after 30 s").events;
        assert_eq!(
            sign_span(&failed).template,
            "POST /api/threads/{id}: RuntimeError: pool exhausted after <duration>"
        );
        let around = sign_span(&server_span(
            "handle POST /api/threads/{id} 42",
            Some(threads),
            None,
        ));
        assert_eq!(around.template, "handle POST /api/threads/{id} <num>");
    }

    /// Raw paths stay masked: a `url.path` is no template, a route that
    /// an instrumentation filled with ids has them masked, and a route
    /// that is not a word of the name leaves the name as it was.
    #[test]
    fn raw_paths_in_span_names_stay_masked() {
        let raw = "/api/threads/8f3a9c2e-6df6-44c5-beb7-56dc1ca79238";
        let by_path = sign_span(&server_span(&format!("POST {raw}"), None, Some(raw)));
        assert_eq!(by_path.template, mask::mask(&format!("POST {raw}")));
        assert!(!by_path.template.contains("8f3a"), "{}", by_path.template);
        let raw_route = sign_span(&server_span(&format!("POST {raw}"), Some(raw), Some(raw)));
        assert_eq!(raw_route.template, "POST /api/threads/<uuid>");
        let not_a_word = sign_span(&server_span(
            "POST /api/threads/{id}x",
            Some("/api/threads/{id}"),
            None,
        ));
        assert_eq!(not_a_word.template, mask::mask("POST /api/threads/{id}x"));
        // The route of a span with a status message is not looked for.
        let mut with_status =
            server_span("POST /api/threads/{id}", Some("/api/threads/{id}"), None);
        with_status.status.as_mut().unwrap().message = "boom 1".into();
        assert_eq!(sign_span(&with_status).template, "boom <num>");
    }

    #[test]
    fn words_are_found_between_whitespace() {
        assert_eq!(find_word("POST /a", "/a"), Some(5));
        assert_eq!(find_word("/a", "/a"), Some(0));
        assert_eq!(find_word("/a/b /a", "/a"), Some(5));
        assert_eq!(find_word("x/a", "/a"), None);
        assert_eq!(find_word("/ab", "/a"), None);
        assert_eq!(find_word("é\u{2003}/a\u{2003}é", "/a"), Some(5));
        assert_eq!(find_word("anything", ""), None);
    }

    #[test]
    fn stack_in_message_uses_head_and_frames() {
        let s = signer();
        let msg = "Error in ConnectionHandler for user 101463487227881885914\nTraceback (most recent call last):\n  File \"/app/netra_backend/app/websocket_core/handlers.py\", line 116, in handle_message\n    await x()\nRuntimeError: WebSocket is not connected. Need to call \"accept\" first.";
        let a = s.sign_message("svc", msg);
        assert_eq!(a.template, "Error in ConnectionHandler for user <num>");
        assert_eq!(a.exception_type.as_deref(), Some("RuntimeError"));
        assert_eq!(a.top_frames, vec!["websocket_core/handlers:handle_message"]);
        let b = s.sign_message("svc", &msg.replace("116", "130"));
        assert_eq!(a.fingerprint, b.fingerprint);
    }
}
