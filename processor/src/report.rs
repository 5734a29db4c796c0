//! The gardener report: the model (serde, the JSON of `/v1/report` and
//! `log-gardener report --format json`) and its Markdown rendering, which
//! reads like the hand-written audit reports it replaces.
//!
//! Pure: built from the [`SignatureTable`], the latest SLI statuses and a
//! generation time passed in. Every list has a deterministic order, so two
//! reports of the same input differ only in `generated_at`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::sli::SliStatus;
use crate::table::SignatureTable;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// RFC 3339.
    pub generated_at: String,
    pub window: Window,
    pub summary: Summary,
    pub signatures: Vec<SignatureEntry>,
    pub slis: Vec<SliEntry>,
    pub trace_context: TraceContextEntry,
}

/// First and last record time over all signatures (RFC 3339; empty if unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Signed records (warnings, errors, error spans, 5xx).
    pub events: u64,
    /// Distinct signatures in the table.
    pub signatures: usize,
    /// Log records checked for trace context.
    pub log_records: u64,
    pub services: Vec<String>,
    pub revisions: Vec<String>,
    /// Signatures dropped from the bounded table.
    pub evicted: u64,
    pub firing: Vec<String>,
    /// Entries of a replayed file that were neither a LogEntry nor an
    /// OTLP/JSON request, so not processed (set by `replay`; left out of
    /// the JSON when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_entries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureEntry {
    pub signature: String,
    pub template: String,
    pub category: String,
    pub priority: String,
    pub severity: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub services: Vec<String>,
    #[serde(default)]
    pub revisions: Vec<String>,
    pub samples: Vec<SampleEntry>,
    #[serde(default)]
    pub code_locations: Vec<String>,
    #[serde(default)]
    pub exception_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleEntry {
    pub message: String,
    pub trace_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliEntry {
    pub sli: String,
    pub service: String,
    pub events: u64,
    pub bad_events: u64,
    pub ratio: f64,
    pub threshold: f64,
    /// Events needed before the SLI is judged (reports saved before this
    /// field existed read as 0).
    #[serde(default)]
    pub min_events: u64,
    pub firing: bool,
}

impl SliEntry {
    /// The Status column: a ratio over the threshold on fewer events than
    /// the SLI needs is not an alert, and must not read as "ok" either.
    fn status(&self) -> String {
        if self.firing {
            "🔥 firing".to_string()
        } else if self.events < self.min_events {
            format!(
                "⏳ not judged: {} of {} events",
                self.events, self.min_events
            )
        } else {
            "✅ ok".to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContextEntry {
    pub present: u64,
    pub missing: u64,
    pub recovered: u64,
    pub invalid: u64,
}

/// Builds the report from the table and the latest SLI statuses.
pub fn build(table: &SignatureTable, slis: &[SliStatus], generated_at_unix_nano: u64) -> Report {
    let entries = table.entries();
    let mut services = std::collections::BTreeSet::new();
    let mut revisions = std::collections::BTreeSet::new();
    let (mut from, mut to) = (0u64, 0u64);
    let mut events = 0;
    let signatures: Vec<SignatureEntry> = entries
        .iter()
        .map(|r| {
            services.extend(r.services.iter().cloned());
            revisions.extend(r.revisions.iter().cloned());
            events += r.count;
            if r.first_seen != 0 && (from == 0 || r.first_seen < from) {
                from = r.first_seen;
            }
            to = to.max(r.last_seen);
            SignatureEntry {
                signature: r.signature(),
                template: r.template.clone(),
                category: r.category.clone(),
                priority: r.priority.as_str().to_string(),
                severity: r.severity.to_string(),
                count: r.count,
                first_seen: rfc3339(r.first_seen),
                last_seen: rfc3339(r.last_seen),
                services: r.services.iter().cloned().collect(),
                revisions: r.revisions.iter().cloned().collect(),
                samples: r
                    .samples
                    .iter()
                    .map(|s| SampleEntry {
                        message: s.message.clone(),
                        trace_id: s.trace_id.clone(),
                    })
                    .collect(),
                code_locations: r.code_locations.iter().cloned().collect(),
                exception_type: r.exception_type.clone(),
            }
        })
        .collect();
    let mut sli_entries: Vec<SliEntry> = slis
        .iter()
        .map(|s| SliEntry {
            sli: s.name.clone(),
            service: s.service().map(str::to_string).unwrap_or_else(|| {
                s.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            events: s.events,
            bad_events: s.bad_events,
            ratio: s.ratio,
            threshold: s.threshold,
            min_events: s.min_events,
            firing: s.firing,
        })
        .collect();
    sli_entries.sort_by(|a, b| a.sli.cmp(&b.sli).then(a.service.cmp(&b.service)));
    let tc = table.trace_context();
    let firing = sli_entries
        .iter()
        .filter(|s| s.firing)
        .map(|s| format!("{}{{service={}}}", s.sli, s.service))
        .collect();
    Report {
        generated_at: rfc3339(generated_at_unix_nano),
        window: Window {
            from: rfc3339(from),
            to: rfc3339(to),
        },
        summary: Summary {
            events,
            signatures: signatures.len(),
            log_records: tc.present + tc.missing + tc.recovered + tc.invalid,
            services: services.into_iter().collect(),
            revisions: revisions.into_iter().collect(),
            evicted: table.evictions(),
            firing,
            skipped_entries: 0,
        },
        signatures,
        slis: sli_entries,
        trace_context: TraceContextEntry {
            present: tc.present,
            missing: tc.missing,
            recovered: tc.recovered,
            invalid: tc.invalid,
        },
    }
}

fn priority_heading(p: &str) -> &'static str {
    match p {
        "P0" => "P0 — Critical Issues (Immediate Action Required)",
        "P1" => "P1 — High Priority Issues",
        "P2" => "P2 — Medium Priority Issues",
        _ => "P3 — Low Priority / Warning-Level Issues",
    }
}

/// One line, at most `max` characters, backticks neutralised for Markdown code spans.
fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("").replace('`', "'");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// A sample on one line: its first line, and for a message of several lines
/// (a stack trace) its last non-empty one too, where a Python traceback
/// names the exception (`Traceback (most recent call last): … KeyError:
/// 'ts'`). Two samples that differ only below their first line stay
/// distinguishable.
fn sample_line(s: &str, max: usize) -> String {
    let first = s.lines().next().unwrap_or("").trim_end();
    let last = s
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .last()
        .filter(|l| *l != first.trim());
    match last {
        Some(last) => one_line(&format!("{first} … {last}"), max),
        None => one_line(first, max),
    }
}

/// An issue's heading: the template, after the exception type unless the
/// template already starts with it (`KeyError: 'ts'`, not `KeyError:
/// KeyError: 'ts'`).
fn title(template: &str, exception_type: Option<&str>) -> String {
    match exception_type {
        Some(t) if !template.starts_with(t) => format!("{t}: {}", one_line(template, 80)),
        _ => one_line(template, 100),
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

impl Report {
    /// The report as Markdown (deterministic for a given report).
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.summary;
        let _ = writeln!(md, "# Gardener Log Audit Report");
        let _ = writeln!(md, "**Generated:** {}  ", self.generated_at);
        if !self.window.from.is_empty() {
            let _ = writeln!(
                md,
                "**Time range:** {} → {}  ",
                self.window.from, self.window.to
            );
        }
        if !s.services.is_empty() {
            let _ = writeln!(md, "**Services:** {}  ", s.services.join(", "));
        }
        if !s.revisions.is_empty() {
            let _ = writeln!(md, "**Revisions:** {}  ", s.revisions.join(", "));
        }
        let _ = writeln!(md, "\n## Executive Summary\n");
        let _ = writeln!(
            md,
            "- **{}** warning/error events grouped into **{}** distinct issues across {} service(s)",
            s.events,
            s.signatures,
            s.services.len()
        );
        if s.skipped_entries > 0 {
            let _ = writeln!(
                md,
                "- **{}** entries of the input skipped: neither a Cloud Logging LogEntry nor an OTLP/JSON request",
                s.skipped_entries
            );
        }
        for p in ["P0", "P1", "P2", "P3"] {
            let (n, c) = self
                .signatures
                .iter()
                .filter(|e| e.priority == p)
                .fold((0, 0), |(n, c), e| (n + 1, c + e.count));
            if n > 0 {
                let _ = writeln!(md, "- **{p}:** {n} issue(s), {c} event(s)");
            }
        }
        if s.firing.is_empty() {
            let _ = writeln!(md, "- SLI alerts firing: none");
        } else {
            let _ = writeln!(md, "- 🔥 SLI alerts firing: {}", s.firing.join(", "));
        }
        if s.evicted > 0 {
            let _ = writeln!(
                md,
                "- {} low-count signature(s) evicted from the bounded table",
                s.evicted
            );
        }

        let mut number = 0;
        for p in ["P0", "P1", "P2", "P3"] {
            let group: Vec<&SignatureEntry> =
                self.signatures.iter().filter(|e| e.priority == p).collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(md, "\n## {}\n", priority_heading(p));
            for e in group {
                number += 1;
                let title = title(&e.template, e.exception_type.as_deref());
                let _ = writeln!(md, "### {number}. {title}");
                let _ = writeln!(md, "**Severity:** {}  ", e.severity);
                let _ = writeln!(md, "**Category:** {}  ", e.category);
                let _ = writeln!(md, "**Count:** {}  ", e.count);
                if !e.first_seen.is_empty() {
                    let _ = writeln!(
                        md,
                        "**First seen:** {}  \n**Last seen:** {}  ",
                        e.first_seen, e.last_seen
                    );
                }
                let _ = writeln!(md, "**Signature:** `{}`  ", e.signature);
                let _ = writeln!(md, "**Template:** `{}`  ", one_line(&e.template, 300));
                if !e.services.is_empty() {
                    let _ = writeln!(md, "**Services:** {}  ", e.services.join(", "));
                }
                if !e.revisions.is_empty() {
                    let _ = writeln!(md, "**Revisions:** {}  ", e.revisions.join(", "));
                }
                if !e.code_locations.is_empty() {
                    let locs: Vec<String> =
                        e.code_locations.iter().map(|l| format!("`{l}`")).collect();
                    let _ = writeln!(md, "**Affected components:** {}  ", locs.join(", "));
                }
                if !e.samples.is_empty() {
                    let _ = writeln!(md, "\n**Samples:**");
                    for sample in &e.samples {
                        if sample.trace_id.is_empty() {
                            let _ = writeln!(md, "- `{}`", sample_line(&sample.message, 300));
                        } else {
                            let _ = writeln!(
                                md,
                                "- `{}` (trace `{}`)",
                                sample_line(&sample.message, 300),
                                sample.trace_id
                            );
                        }
                    }
                }
                let _ = writeln!(md);
            }
        }

        // Error distribution by category.
        let mut categories: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        for e in &self.signatures {
            let entry = categories.entry(&e.category).or_insert((0, &e.priority));
            entry.0 += e.count;
            if e.priority.as_str() < entry.1 {
                entry.1 = &e.priority;
            }
        }
        let mut categories: Vec<(&str, u64, &str)> = categories
            .into_iter()
            .map(|(c, (n, p))| (c, n, p))
            .collect();
        categories.sort_by(|a, b| a.2.cmp(b.2).then(b.1.cmp(&a.1)).then(a.0.cmp(b.0)));
        let _ = writeln!(md, "\n## Error Categories and Counts\n");
        let _ = writeln!(md, "| Category | Count | Priority |");
        let _ = writeln!(md, "|----------|-------|----------|");
        for (c, n, p) in &categories {
            let _ = writeln!(md, "| {c} | {n} | {p} |");
        }

        let _ = writeln!(md, "\n## SLI Status\n");
        if self.slis.is_empty() {
            let _ = writeln!(md, "No SLI events yet.");
        } else {
            let _ = writeln!(
                md,
                "| SLI | Service | Events | Bad | Ratio | Threshold | Status |"
            );
            let _ = writeln!(
                md,
                "|-----|---------|--------|-----|-------|-----------|--------|"
            );
            for sli in &self.slis {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    sli.sli,
                    sli.service,
                    sli.events,
                    sli.bad_events,
                    percent(sli.ratio),
                    percent(sli.threshold),
                    sli.status()
                );
            }
        }

        let tc = &self.trace_context;
        let total = tc.present + tc.missing + tc.recovered + tc.invalid;
        let _ = writeln!(md, "\n## Trace-Context Health\n");
        let _ = writeln!(md, "| State | Log records | Share |");
        let _ = writeln!(md, "|-------|-------------|-------|");
        for (name, n) in [
            ("present", tc.present),
            ("recovered", tc.recovered),
            ("missing", tc.missing),
            ("invalid", tc.invalid),
        ] {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            let _ = writeln!(md, "| {name} | {n} | {} |", percent(share));
        }

        let mut components: Vec<&str> = self
            .signatures
            .iter()
            .flat_map(|e| e.code_locations.iter().map(String::as_str))
            .collect();
        components.sort_unstable();
        components.dedup();
        if !components.is_empty() {
            let _ = writeln!(md, "\n## Affected Components\n");
            for c in components {
                let _ = writeln!(md, "- `{c}`");
            }
        }
        md
    }
}

/// Unix nanoseconds as RFC 3339 UTC with millisecond precision (`""` for 0).
pub fn rfc3339(unix_nano: u64) -> String {
    if unix_nano == 0 {
        return String::new();
    }
    let secs = unix_nano / 1_000_000_000;
    let millis = (unix_nano % 1_000_000_000) / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`2025-09-04T17:53:37.123456Z`, `…+02:00`) into unix ns.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(r)?).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut digits = 0;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if digits < 9 {
                nanos = nanos * 10 + (c - b'0') as i64;
                digits += 1;
            }
            i += 1;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    // Years after 2554 do not fit in u64 nanoseconds: refuse rather than wrap.
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos as u64)
}

// Howard Hinnant's civil calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let ns = parse_rfc3339("2025-09-04T17:53:37.123456Z").unwrap();
        assert_eq!(rfc3339(ns), "2025-09-04T17:53:37.123Z");
        assert_eq!(
            parse_rfc3339("2025-09-04T19:53:37+02:00"),
            parse_rfc3339("2025-09-04T17:53:37Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_rfc3339("nonsense"), None);
        // Found by the replay fuzz target: a year past 2554 overflowed u64 ns.
        assert_eq!(parse_rfc3339("3094-09-11T05:17:19.329027Z"), None);
        assert!(parse_rfc3339("2554-01-01T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999999999Z"), None);
        assert_eq!(rfc3339(0), "");
    }

    #[test]
    fn empty_report_renders() {
        let table = SignatureTable::new(10);
        let report = build(&table, &[], 1_000_000_000);
        let md = report.to_markdown();
        assert!(md.starts_with("# Gardener Log Audit Report"));
        assert!(md.contains("## Trace-Context Health"));
    }

    #[test]
    fn headings_and_samples_of_tracebacks_read_well() {
        assert_eq!(
            title("KeyError: '<str>'", Some("KeyError")),
            "KeyError: '<str>'"
        );
        assert_eq!(
            title("lookup of <str> failed", Some("KeyError")),
            "KeyError: lookup of <str> failed"
        );
        assert_eq!(title("plain", None), "plain");
        let traceback = "Traceback (most recent call last):\n  File \"/app/main.py\", line 10, in h\n    ts = p[\"ts\"]\nKeyError: 'ts'\n";
        assert_eq!(
            sample_line(traceback, 300),
            "Traceback (most recent call last): … KeyError: 'ts'"
        );
        assert_eq!(sample_line("one line", 300), "one line");
        assert_eq!(sample_line("same\nsame\n\n", 300), "same");
        assert_eq!(sample_line("a `b`\nc", 300), "a 'b' … c");
        assert_eq!(sample_line("abcdef\nxyz", 8), "abcdef ……");
    }

    #[test]
    fn sli_status_says_when_too_few_events_were_seen() {
        let status = |events, bad_events, firing| SliStatus {
            sli: 0,
            name: "http_5xx".into(),
            labels: vec![("service".into(), "api".into())],
            events,
            bad_events,
            ratio: bad_events as f64 / events as f64,
            threshold: 0.01,
            min_events: 100,
            firing,
            changed: None,
        };
        let table = SignatureTable::new(10);
        let row = |s: SliStatus| {
            let md = build(&table, &[s], 1).to_markdown();
            md.lines()
                .find(|l| l.starts_with("| http_5xx"))
                .unwrap()
                .to_string()
        };
        // 2 of 11 requests failed: over 1%, but not yet an alert, and not ok.
        let thin = row(status(11, 2, false));
        assert!(thin.contains("not judged: 11 of 100 events"), "{thin}");
        assert!(!thin.contains("ok"), "{thin}");
        assert!(row(status(500, 1, false)).contains("✅ ok"));
        assert!(row(status(500, 50, true)).contains("🔥 firing"));
    }
}
