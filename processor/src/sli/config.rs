//! SLI configuration: the definition language and the built-in SLIs.
//!
//! ```yaml
//! sli:
//!   max_series: 10000       # label sets kept by the local windows
//!   clear_factor: 0.8       # a firing SLI clears below threshold * clear_factor
//!   definitions:
//!     http_5xx:
//!       threshold: 0.02     # override one field of a built-in
//!     agent_failure:
//!       enabled: false      # disable a built-in
//!     checkout_errors:      # a new SLI
//!       description: Checkout requests that fail.
//!       events:
//!         - { signal: span, span_kind: server, span_name: '^POST /api/checkout' }
//!       bad:
//!         - { span_status: error }
//!         - { http_status: { min: 500, max: 599 } }
//!       threshold: 0.05
//!       window_secs: 600
//!       min_events: 50
//!       labels: [service, http.route]
//! ```
//!
//! A definition's `events` and `bad` are each an any-of list of matchers; a
//! matcher is an all-of set of conditions. A record counts as an event if an
//! `events` matcher matches, and as bad if it is an event and a `bad` matcher
//! matches (so `bad` never needs to repeat what makes a record an event).
//! Conditions:
//!
//! | key | meaning |
//! |---|---|
//! | `signal` | `log` or `span` |
//! | `span_kind` | `server`, `client`, `internal`, `producer`, `consumer`, or a list (implies a span) |
//! | `span_name` | regex on the span name (implies a span) |
//! | `span_status` | `error` or `not_error` |
//! | `severity_min` | number or name (`WARN`, `ERROR`, ...) |
//! | `http_status` | `500`, `"5xx"`, `"500-599"` or `{min: 500, max: 599}` |
//! | `has_http_status` | `true` / `false` |
//! | `category`, `category_prefix` | the error signature's category |
//! | `message` | regex on the message |
//! | `attributes` | list of `{key, equals \| regex \| exists}`; record attributes first, then resource attributes |

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SliSignal;

/// Names of the built-in SLIs, in report order.
pub const BUILTIN_NAMES: [&str; 4] = [
    "http_5xx",
    "websocket_failure",
    "agent_failure",
    "db_connection_error",
];

/// The built-in definitions, in the same language users write. Word
/// boundaries are ASCII (`(?-u:\b)`) so that the regex engine can stay on
/// its fast DFA path for non-ASCII messages, and digits are ASCII (`[0-9]`,
/// not `\d`/`\D`): status and close codes in logs are ASCII, and a Unicode
/// `\D{0,20}` alone compiled to ~7M instructions, a tenth of start-up
/// (user regexes keep the regex crate's Unicode semantics). Kept as YAML
/// so that `check-config` users and readers see exactly what a built-in
/// means, and so that a test proves the language can express them.
pub const BUILTIN_YAML: &str = r#"
http_5xx:
  description: HTTP server requests answered with a 5xx status.
  threshold: 0.01
  window_secs: 300
  min_events: 100
  events:
    # Request logs: Cloud Run httpRequest, access logs with a parsed status.
    - { signal: log, http_status: { min: 100, max: 599 } }
    # HTTP server spans, with or without a recorded status code. Server spans
    # of other protocols (gRPC) are not HTTP requests and are left out.
    - { signal: span, span_kind: server, http_status: { min: 100, max: 599 } }
    - { signal: span, span_kind: server, attributes: [ { key: http.request.method, exists: true } ] }
    - { signal: span, span_kind: server, attributes: [ { key: http.method, exists: true } ] }
  bad:
    - { http_status: { min: 500, max: 599 } }
    # An HTTP server span that ended in error without a status code: the
    # HTTP semantic conventions set server spans to Error only for 5xx or
    # when no response was sent at all, both server failures.
    - { signal: span, has_http_status: false, span_status: error }

websocket_failure:
  description: WebSocket connection attempts that fail or close abnormally.
  threshold: 0.05
  window_secs: 300
  min_events: 100
  events:
    # The upgrade response (Cloud Run request log or server span).
    - { http_status: 101 }
    - { signal: span, attributes: [ { key: network.protocol.name, equals: websocket } ] }
    - { signal: span, attributes: [ { key: url.scheme, regex: '^wss?$' } ] }
    - { signal: span, span_kind: server, span_name: '(?i)websocket|^/ws(?-u:\b)' }
    - { signal: span, span_name: '(?i)websocket[ ._]?(connect|accept|handshake|upgrade)|(?-u:\b)ws[._]connect' }
    - { attributes: [ { key: websocket.close.code, exists: true } ] }
    # uvicorn: '"WebSocket /ws" [accepted]' and '"WebSocket /ws" 403'.
    - { signal: log, message: '"WebSocket [^"]*" (\[accepted\]|[0-9]{3})' }
    - { signal: log, message: '(?i)websocket connection (accepted|established|opened|failed|rejected|refused|closed abnormally)' }
    # Failures always count as attempts, even without a connect record.
    - { category_prefix: websocket }
  bad:
    # websocket_state, websocket_race, websocket_limit, websocket_heartbeat...
    - { category_prefix: websocket }
    # 1006 abnormal closure, 1011 internal error.
    - { attributes: [ { key: websocket.close.code, regex: '^(1006|1011)$' } ] }
    - { message: '(?i)(?-u:\b)(close|closed|closing|code)(?-u:\b)[^0-9]{0,20}(?-u:\b)(1006|1011)(?-u:\b)' }
    - { signal: log, message: '"WebSocket [^"]*" [45][0-9][0-9]' }
    - { signal: span, span_status: error }
    - { severity_min: ERROR }

agent_failure:
  description: Agent executions that fail.
  threshold: 0.10
  window_secs: 300
  min_events: 100
  events:
    # OpenTelemetry GenAI semantic conventions.
    - { signal: span, attributes: [ { key: gen_ai.operation.name, equals: invoke_agent } ] }
    - { signal: span, span_name: '^invoke_agent(?-u:\b)|^agent\.run$|Agent\.execute$|^agent[._ ]execut' }
    - { signal: log, attributes: [ { key: gen_ai.operation.name, equals: invoke_agent } ] }
    - { signal: log, message: '(?i)(?-u:\b)agent(?-u:\b).{0,60}(?-u:\b)(started|starting|completed|finished|succeeded)(?-u:\b)' }
    # Error logs about agents are failed executions.
    - { signal: log, severity_min: ERROR, message: '(?i)(?-u:\b)agents?(?-u:\b)' }
    - { category_prefix: agent }
  bad:
    - { span_status: error }
    - { severity_min: ERROR }
    - { category_prefix: agent }

db_connection_error:
  description: Database connection errors; any occurrence fires.
  threshold: 0
  window_secs: 300
  min_events: 1
  events: [ { category: database_connection } ]
  bad: [ { category: database_connection } ]
"#;

/// `processors: gardener: sli:` in the collector config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SliConfig {
    /// Include the built-in SLIs (default true). Individual built-ins are
    /// disabled with `enabled: false` in `definitions`.
    pub builtins: bool,
    /// Label sets kept by [`super::SliWindows`]; records of further label
    /// sets are counted as overflow (default 10,000).
    pub max_series: usize,
    /// Hysteresis: a firing SLI clears only when its ratio drops below
    /// `threshold * clear_factor` (default 0.8), so a ratio hovering at the
    /// threshold does not flap.
    pub clear_factor: f64,
    /// SLI definitions by name; a built-in's name overrides its fields.
    pub definitions: BTreeMap<String, SliDefinitionConfig>,
}

impl Default for SliConfig {
    fn default() -> Self {
        SliConfig {
            builtins: true,
            max_series: 10_000,
            clear_factor: 0.8,
            definitions: BTreeMap::new(),
        }
    }
}

impl SliConfig {
    /// Parses a YAML `sli:` section (convenience for tests and tools).
    pub fn from_yaml(yaml: &str) -> Result<Self, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    /// The built-in definitions, parsed.
    pub fn builtin_definitions() -> BTreeMap<String, SliDefinitionConfig> {
        serde_yaml_ng::from_str(BUILTIN_YAML).expect("built-in SLI definitions parse")
    }

    /// The effective definitions in evaluation order: enabled built-ins
    /// (in [`BUILTIN_NAMES`] order, with user overrides applied field by
    /// field), then user-defined SLIs by name.
    pub fn effective(&self) -> Vec<(String, SliDefinitionConfig)> {
        let mut out = Vec::new();
        if self.builtins {
            let mut builtins = Self::builtin_definitions();
            for name in BUILTIN_NAMES {
                let mut def = builtins.remove(name).expect("built-in present");
                if let Some(user) = self.definitions.get(name) {
                    def = user.clone().over(def);
                }
                if def.enabled != Some(false) {
                    out.push((name.to_string(), def));
                }
            }
        }
        for (name, def) in &self.definitions {
            if self.builtins && BUILTIN_NAMES.contains(&name.as_str()) {
                continue;
            }
            if def.enabled != Some(false) {
                out.push((name.clone(), def.clone()));
            }
        }
        out
    }
}

/// One SLI definition; every field is optional so that a built-in can be
/// overridden one field at a time. A new SLI needs `events`, `bad` and
/// `threshold`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliDefinitionConfig {
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub events: Option<Vec<MatcherConfig>>,
    pub bad: Option<Vec<MatcherConfig>>,
    /// Fires when bad/events is above this ratio; `0` means "any bad event".
    pub threshold: Option<f64>,
    /// Sliding window (default 300).
    pub window_secs: Option<u64>,
    /// Events needed in the window before the SLI may fire (default 100).
    pub min_events: Option<u64>,
    /// `service` and/or attribute keys (default `[service]`).
    pub labels: Option<Vec<String>>,
}

impl SliDefinitionConfig {
    /// `self`'s fields where set, else `base`'s.
    fn over(self, base: SliDefinitionConfig) -> SliDefinitionConfig {
        SliDefinitionConfig {
            enabled: self.enabled.or(base.enabled),
            description: self.description.or(base.description),
            events: self.events.or(base.events),
            bad: self.bad.or(base.bad),
            threshold: self.threshold.or(base.threshold),
            window_secs: self.window_secs.or(base.window_secs),
            min_events: self.min_events.or(base.min_events),
            labels: self.labels.or(base.labels),
        }
    }
}

/// One matcher: all present conditions must hold.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherConfig {
    pub signal: Option<SliSignal>,
    pub span_kind: Option<OneOrMany<SpanKindName>>,
    pub span_name: Option<String>,
    pub span_status: Option<SpanStatusName>,
    pub severity_min: Option<SeverityConfig>,
    pub http_status: Option<HttpStatusConfig>,
    pub has_http_status: Option<bool>,
    pub category: Option<String>,
    pub category_prefix: Option<String>,
    pub message: Option<String>,
    pub attributes: Option<Vec<AttributeMatcherConfig>>,
}

/// `{key, equals}`, `{key, regex}` or `{key, exists}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatcherConfig {
    pub key: String,
    pub equals: Option<String>,
    pub regex: Option<String>,
    pub exists: Option<bool>,
}

/// A single value or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

/// OTLP span kinds by their lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKindName {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKindName {
    /// The OTLP `SpanKind` number.
    pub fn as_i32(self) -> i32 {
        match self {
            SpanKindName::Internal => 1,
            SpanKindName::Server => 2,
            SpanKindName::Client => 3,
            SpanKindName::Producer => 4,
            SpanKindName::Consumer => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatusName {
    Error,
    NotError,
}

/// A severity number or one of the OTLP short names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SeverityConfig {
    Number(i32),
    Name(String),
}

impl std::fmt::Display for SeverityConfig {
    /// As written in the config: `17`, `"ERRR"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeverityConfig::Number(n) => write!(f, "{n}"),
            SeverityConfig::Name(name) => write!(f, "{name:?}"),
        }
    }
}

impl SeverityConfig {
    pub fn number(&self) -> Option<i32> {
        match self {
            SeverityConfig::Number(n) if (1..=24).contains(n) => Some(*n),
            SeverityConfig::Number(_) => None,
            SeverityConfig::Name(s) => match s.to_ascii_uppercase().as_str() {
                "TRACE" => Some(1),
                "DEBUG" => Some(5),
                "INFO" => Some(9),
                "WARN" | "WARNING" => Some(13),
                "ERROR" => Some(17),
                "FATAL" | "CRITICAL" => Some(21),
                _ => None,
            },
        }
    }
}

/// `500`, `"5xx"`, `"500-599"` or `{min, max}` (inclusive).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum HttpStatusConfig {
    Code(u16),
    Text(String),
    Range { min: u16, max: u16 },
}

impl HttpStatusConfig {
    pub fn range(&self) -> Option<(u16, u16)> {
        match self {
            HttpStatusConfig::Code(c) => Some((*c, *c)),
            HttpStatusConfig::Range { min, max } if min <= max => Some((*min, *max)),
            HttpStatusConfig::Range { .. } => None,
            HttpStatusConfig::Text(t) => {
                let t = t.trim();
                if let Some((a, b)) = t.split_once('-') {
                    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    return (a <= b).then_some((a, b));
                }
                let b = t.as_bytes();
                if b.len() == 3 && b[0].is_ascii_digit() && b[1..].eq_ignore_ascii_case(b"xx") {
                    let base = u16::from(b[0] - b'0') * 100;
                    return Some((base, base + 99));
                }
                t.parse().ok().map(|c| (c, c))
            }
        }
    }
}

/// Errors turning an [`SliConfig`] into an [`super::SliEngine`].
#[derive(Debug, thiserror::Error)]
pub enum SliConfigError {
    /// The one check of all SLIs together (`sli.clear_factor`).
    #[error("clear_factor {0} is not in (0, 1]")]
    ClearFactor(f64),
    #[error("sli `{sli}`: {message}")]
    Invalid { sli: String, message: String },
    #[error("sli `{sli}`: invalid regex `{pattern}`: {source}")]
    Regex {
        sli: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    /// One of the above in matcher `index` of a definition's `list`
    /// (`events` or `bad`), so that `check-config` can point at it.
    #[error("sli `{sli}`: {list}[{index}]: {message}")]
    Matcher {
        sli: String,
        list: &'static str,
        index: usize,
        message: String,
    },
}

impl SliConfigError {
    /// This error as found in matcher `index` of `list`.
    pub(crate) fn in_matcher(self, list: &'static str, index: usize) -> Self {
        match self {
            SliConfigError::Invalid { sli, message } => SliConfigError::Matcher {
                sli,
                list,
                index,
                message,
            },
            SliConfigError::Regex {
                sli,
                pattern,
                source,
            } => SliConfigError::Matcher {
                sli,
                list,
                index,
                message: format!("invalid regex `{pattern}`: {source}"),
            },
            // Not about a matcher: as it was.
            other @ (SliConfigError::Matcher { .. } | SliConfigError::ClearFactor(_)) => other,
        }
    }
}
