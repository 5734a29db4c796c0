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
        // the span name.
        let head = trim(head);
        // Already masked; appended to the template as it is.
        let mut route: Option<String> = None;
        let text: Cow<str> = if !head.is_empty() {
            Cow::Borrowed(head)
        } else {
            match (exception_type.as_deref(), exception_message) {
                (Some(t), Some(m)) => Cow::Owned(format!("{t}: {m}")),
                (Some(t), None) => Cow::Borrowed(t),
                (None, Some(m)) => Cow::Borrowed(m),
                (None, None) => match (view.http_status, view.span_name) {
                    // A request log or span without a message: the status,
                    // method and route are the message.
                    (Some(status), _) => {
                        let mut t = format!("HTTP {status}");
                        if let Some(m) = view.http_method.as_deref() {
                            t.push(' ');
                            t.push_str(m);
                        }
                        if let Some(r) = view.http_route.as_deref() {
                            route = Some(mask::mask_route(r));
                        }
                        Cow::Owned(t)
                    }
                    (None, name) => Cow::Borrowed(name.unwrap_or("")),
                },
            }
        };
        let top_frames = trace
            .map(|t| t.top_frames(self.cfg.top_frames))
            .unwrap_or_default();
        let error_like = view.severity_number >= severity::ERROR
            || view.span_status_error
            || view.http_status.is_some_and(|s| s >= 500);
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
                code_function: None,
                code_file: None,
                span_kind: None,
                span_name: None,
                span_status_error: false,
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
        let compute = || {
            let cat = self.rules.categorize(&MatchInput {
                template: &template,
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
