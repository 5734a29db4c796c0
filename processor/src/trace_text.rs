//! Trace ids written into a log line's text.
//!
//! Why: many services put the trace context into the formatted line rather
//! than into the record's fields: OpenTelemetry Python's logging
//! instrumentation (`[trace_id=… span_id=…]` in its default format), Go's
//! `slog` text handler, a JSON line collected as a string. Collected from
//! stdout, those lines reach the collector with an empty `trace_id` field.
//! The OpenTelemetry Collector leaves that to a `regex_parser` per format;
//! here one scan recognises the common spellings, so the record can be
//! joined with its trace without a configuration per application.
//!
//! Recognised: a key `trace_id`, `traceId`, `trace-id`, `trace.id`,
//! `trace`, `traceparent`, `otelTraceID` or `x-cloud-trace-context`
//! (lowercase or capitalised: `Trace-Id`, `TraceID`), optionally quoted,
//! then `=` or `:` and the value, optionally quoted, in any form the
//! attribute check accepts (32 hex digits, a W3C `traceparent`,
//! `projects/P/traces/ID`, `ID/SPAN;o=1`). The span id comes from the same
//! value or from a `span_id` (`spanId`, `span-id`, `span.id`, `otelSpanID`)
//! key written the same way.
//!
//! Text is prose: a key whose value does not parse (`trace_id=None`,
//! `trace_id: Field required`) is passed over, never reported as an
//! invalid id; only a value that parses counts.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::trace_context::{parse_span_str, parse_trace_str, Parsed};

/// A key's stem, found by its lowercase tail (`race` finds `trace` and
/// `Trace`) and checked for its first letter: one SIMD substring search
/// costs a tenth of a case-insensitive automaton on text that holds no
/// key, which is most text. An all-capitals key (`TRACE_ID=`) is not
/// looked for: log lines do not write them, and a second search would
/// double the cost for every line.
struct Stem {
    first: u8,
    tail: Finder<'static>,
    suffixes: &'static [&'static str],
}

impl Stem {
    fn new(word: &'static str, suffixes: &'static [&'static str]) -> Self {
        Stem {
            first: word.as_bytes()[0],
            tail: Finder::new(&word.as_bytes()[1..]),
            suffixes,
        }
    }

    /// The first value written after this stem's key in `bytes` that
    /// `parse` accepts.
    fn first_value<T>(&self, bytes: &[u8], parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        self.tail.find_iter(bytes).find_map(|tail| {
            let start = tail.checked_sub(1)?;
            if !bytes[start].eq_ignore_ascii_case(&self.first) || !starts_a_key(bytes, start) {
                return None;
            }
            let end = tail + self.tail.needle().len();
            value_after_key(bytes, end, self.suffixes).and_then(&parse)
        })
    }
}

/// What may follow the stem "trace" to make a trace-id key (lowercased).
const TRACE_SUFFIXES: &[&str] = &["_id", "id", "-id", ".id", "parent", "-context", ""];
/// What may follow the stem "span" to make a span-id key (lowercased).
const SPAN_SUFFIXES: &[&str] = &["_id", "id", "-id", ".id"];

static TRACE: LazyLock<Stem> = LazyLock::new(|| Stem::new("trace", TRACE_SUFFIXES));
static SPAN: LazyLock<Stem> = LazyLock::new(|| Stem::new("span", SPAN_SUFFIXES));

/// The trace id (with the span id carried in its value, else one from a
/// separate span key) found in `text`; `None` when no key holds a valid
/// trace id. The first valid value of each wins.
#[inline(never)]
pub fn ids_in_text(text: &str) -> Option<([u8; 16], Option<[u8; 8]>)> {
    let bytes = text.as_bytes();
    let (trace, span) = TRACE.first_value(bytes, |v| match parse_trace_str(v) {
        Parsed::Valid(t, s) => Some((t, s)),
        _ => None,
    })?;
    Some((
        trace,
        span.or_else(|| SPAN.first_value(bytes, parse_span_str)),
    ))
}

/// Whether the stem at `start` begins a key: not inside a word
/// (`stacktrace`, `subspan`), except after `otel` (`otelTraceID`).
fn starts_a_key(bytes: &[u8], start: usize) -> bool {
    let before = &bytes[..start];
    let word_char = |b: &u8| b.is_ascii_alphanumeric();
    match before.last() {
        None => true,
        Some(b) if !word_char(b) => true,
        Some(_) => {
            before.len() >= 4
                && before[before.len() - 4..].eq_ignore_ascii_case(b"otel")
                && before
                    .len()
                    .checked_sub(5)
                    .is_none_or(|i| !word_char(&bytes[i]))
        }
    }
}

/// The longest value read after a key. Every form of id the check accepts
/// fits in far fewer characters (a Cloud Logging trace name with a
/// 30-character project id is 72). Why a bound at all: the key's stem can
/// recur inside a value's characters (`trace_id=trace_id=…`), and without
/// one, each occurrence would read the rest of the line: a megabyte of
/// that took minutes of a worker's time.
const MAX_VALUE_LEN: usize = 256;

/// The value written after a key that starts with a stem ending at `at`:
/// one of `suffixes`, an optional closing quote, `=` or `:` with optional
/// spaces around it, an optional opening quote, then the value's
/// characters (letters, digits, `-_./;=`), less a sentence's final `.`/`;`;
/// `None` for a run of such characters longer than [`MAX_VALUE_LEN`].
fn value_after_key<'t>(bytes: &'t [u8], at: usize, suffixes: &[&str]) -> Option<&'t str> {
    let rest = &bytes[at..];
    // The longest suffix that ends the key (no letter or digit after it).
    let suffix = suffixes
        .iter()
        .filter(|s| {
            rest.len() >= s.len()
                && rest[..s.len()].eq_ignore_ascii_case(s.as_bytes())
                && rest
                    .get(s.len())
                    .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        })
        .map(|s| s.len())
        .max()?;
    let mut i = at + suffix;
    let skip_spaces = |i: &mut usize| {
        while bytes.get(*i) == Some(&b' ') {
            *i += 1;
        }
    };
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    skip_spaces(&mut i);
    if !matches!(bytes.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    skip_spaces(&mut i);
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let start = i;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || b"-_./;=".contains(b))
    {
        i += 1;
        if i - start > MAX_VALUE_LEN {
            return None;
        }
    }
    let mut value = &bytes[start..i];
    while let [head @ .., b'.' | b';'] = value {
        value = head;
    }
    // Only ASCII bytes were taken.
    std::str::from_utf8(value).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn found(text: &str) -> Option<(String, Option<String>)> {
        ids_in_text(text).map(|(t, s)| (hex(&t), s.map(|s| hex(&s))))
    }

    fn ids(span: Option<&str>) -> Option<(String, Option<String>)> {
        Some((TRACE.to_string(), span.map(str::to_string)))
    }

    #[test]
    fn opentelemetry_python_logging_format() {
        let line = format!(
            "2026-12-07 10:00:01,123 ERROR [app.api] [api.py:88] [trace_id={TRACE} span_id={SPAN} \
             resource.service.name=backend trace_sampled=True] - Failed to load session"
        );
        assert_eq!(found(&line), ids(Some(SPAN)));
    }

    #[test]
    fn common_spellings_and_separators() {
        for line in [
            format!("level=error msg=\"db down\" trace_id={TRACE} span_id={SPAN}"),
            format!("error traceId: {TRACE}, spanId: {SPAN}"),
            format!("{{\"msg\":\"boom\",\"trace_id\":\"{TRACE}\",\"span_id\":\"{SPAN}\"}}"),
            format!("{{'otelTraceID': '{TRACE}', 'otelSpanID': '{SPAN}'}}"),
            format!("Trace-ID = {TRACE} Span.ID={SPAN}"),
            format!("request failed (trace.id={TRACE}; span-id={SPAN})."),
        ] {
            assert_eq!(found(&line), ids(Some(SPAN)), "{line}");
        }
    }

    #[test]
    fn values_in_every_accepted_form() {
        assert_eq!(
            found(&format!(
                "traceparent: 00-{TRACE}-{SPAN}-01 upstream failed"
            )),
            ids(Some(SPAN))
        );
        assert_eq!(
            found(&format!("trace=projects/my-project/traces/{TRACE} error")),
            ids(None)
        );
        // X-Cloud-Trace-Context carries the span id in decimal.
        assert_eq!(
            found(&format!("x-cloud-trace-context: {TRACE}/1;o=1 retrying")),
            Some((TRACE.to_string(), Some("0000000000000001".to_string())))
        );
        assert_eq!(
            found(&format!("trace_id={}", TRACE.to_uppercase())),
            ids(None)
        );
        assert_eq!(found(&format!("done. trace_id={TRACE}.")), ids(None));
    }

    #[test]
    fn prose_and_unparsable_values_are_not_ids() {
        for line in [
            "ValidationError: trace_id Field required".to_string(),
            "trace_id=None span_id=None".to_string(),
            "trace_id=0".to_string(),
            "stacktrace: Traceback (most recent call last)".to_string(),
            format!("stacktrace={TRACE}"),
            format!("subspan_id={SPAN}"),
            format!("trace_identifier={TRACE}"),
            format!("trace_id={}", &TRACE[..16]),
            "dd.trace_id=1234567890123456789".to_string(),
            format!("the trace {TRACE} failed"),
            format!("trace_id={}", "0".repeat(32)),
            // Not looked for (see `Stem`).
            format!("TRACE_ID={TRACE}"),
            String::new(),
        ] {
            assert_eq!(found(&line), None, "{line}");
        }
    }

    #[test]
    fn a_span_id_alone_is_not_enough_and_the_first_valid_trace_wins() {
        assert_eq!(found(&format!("span_id={SPAN}")), None);
        let other = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(
            found(&format!("trace_id=nope trace_id={TRACE} trace_id={other}")),
            ids(None)
        );
        // A span id written before the trace id is still found.
        assert_eq!(
            found(&format!("span_id={SPAN} trace_id={TRACE}")),
            ids(Some(SPAN))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_finds_what_is_written(
            before in "[ -~é]{0,40}",
            after in "[ -~é]{0,40}",
            id in "[0-9a-f]{32}",
        ) {
            let _ = ids_in_text(&before);
            let line = format!("{before} trace_id={id} {after}");
            let want = crate::trace_context::parse_trace_str(&id);
            // The written id is found unless the text before it holds another valid one.
            if let (Parsed::Valid(t, _), None) = (want, ids_in_text(&before)) {
                proptest::prop_assert_eq!(ids_in_text(&line).map(|(t, _)| t), Some(t));
            }
        }
    }

    #[test]
    fn a_value_longer_than_any_id_is_passed_over() {
        let long = format!("projects/{}/traces/{TRACE}", "p".repeat(MAX_VALUE_LEN));
        assert_eq!(found(&format!("trace={long}")), None);
        let fits = format!("projects/{}/traces/{TRACE}", "p".repeat(30));
        assert_eq!(found(&format!("trace={fits}")), ids(None));
    }

    #[test]
    fn a_key_repeated_inside_its_own_value_is_read_in_bounded_steps() {
        // Each `trace_id=` starts a key whose value runs to the end of the
        // repetition; unbounded, this line took minutes.
        let line = format!("{} trace_id={TRACE}", "trace_id=".repeat(100_000));
        assert_eq!(found(&line), ids(None));
    }

    #[test]
    fn never_panics_on_edges() {
        for line in [
            "trace",
            "trace_id",
            "trace_id=",
            "trace_id:\"",
            "otel",
            "xtrace=",
            "é trace_id=é",
        ] {
            let _ = ids_in_text(line);
        }
    }
}
