//! CORS for the OTLP/HTTP receiver, so that browser applications (the
//! OpenTelemetry JavaScript SDK's OTLP/HTTP exporters) can send to it from
//! another origin.
//!
//! Configured as the OpenTelemetry Collector's `confighttp` `cors` block:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `allowed_origins` | `[]` (CORS off) | origins allowed to send: exact (`https://app.example.com`), with one `*` wildcard (`https://*.example.com`), or `*` for any |
//! | `allowed_headers` | `[]` | request headers allowed besides `Accept`, `Accept-Language`, `Content-Language` and `Content-Type` (e.g. `Authorization` for a bearer token); `*` allows whatever the browser asks for |
//! | `max_age` | unset | seconds a browser may cache a preflight answer |
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! is answered here, before the bearer-token check (browsers send no
//! credentials on a preflight) and without counting: it is not an export.
//! Every answer to an allowed origin, refusals included, carries
//! `Access-Control-Allow-Origin`, so the browser application can read why
//! it was refused. An origin not allowed gets no CORS headers, and the
//! browser withholds the answer from it.

use axum::http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// `receivers.otlp.protocols.http.cors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send; empty: CORS off.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed besides the CORS-safelisted ones.
    pub allowed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age: Option<u64>,
}

/// The headers every CORS configuration allows, as the Collector does.
const ALWAYS_ALLOWED: [&str; 4] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// The layer for `config`, `Ok(None)` when no origin is listed, or an error
/// naming the key below `cors` (`allowed_origins`, `allowed_headers`) and
/// the value.
pub fn layer(config: &CorsConfig) -> Result<Option<CorsLayer>, String> {
    if config.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = config
        .allowed_origins
        .iter()
        .map(|o| OriginPattern::parse(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("allowed_origins: {e}"))?;
    let allow_origin = if origins.iter().any(|o| matches!(o, OriginPattern::Any)) {
        AllowOrigin::any()
    } else {
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let origin = origin.as_bytes();
            origins.iter().any(|o| o.matches(origin))
        })
    };
    let allow_headers = if config.allowed_headers.iter().any(|h| h == "*") {
        // What the browser asks for is what it gets (a literal `*` would
        // not cover `Authorization`, by the Fetch standard).
        AllowHeaders::mirror_request()
    } else {
        let mut names = ALWAYS_ALLOWED.map(HeaderName::from_static).to_vec();
        for header in &config.allowed_headers {
            let name = HeaderName::try_from(header.as_str())
                .map_err(|_| format!("allowed_headers: {header:?} is not a header name"))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        AllowHeaders::list(names)
    };
    let mut layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST])
        .allow_headers(allow_headers);
    if let Some(seconds) = config.max_age {
        layer = layer.max_age(std::time::Duration::from_secs(seconds));
    }
    Ok(Some(layer))
}

/// One entry of `allowed_origins`.
#[derive(Debug, Clone, PartialEq)]
enum OriginPattern {
    Any,
    Exact(Vec<u8>),
    /// `prefix*suffix`: the wildcard stands for one or more characters.
    Wildcard {
        prefix: Vec<u8>,
        suffix: Vec<u8>,
    },
}

impl OriginPattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let lower = pattern.to_ascii_lowercase();
        match lower.matches('*').count() {
            _ if lower.is_empty() => Err("an empty origin".into()),
            _ if lower == "*" => Ok(OriginPattern::Any),
            0 => Ok(OriginPattern::Exact(lower.into_bytes())),
            1 => {
                let (prefix, suffix) = lower.split_once('*').expect("one `*`");
                Ok(OriginPattern::Wildcard {
                    prefix: prefix.as_bytes().to_vec(),
                    suffix: suffix.as_bytes().to_vec(),
                })
            }
            _ => Err(format!("{pattern:?} has more than one `*`")),
        }
    }

    /// Origins are compared without regard to case, as hosts are.
    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(exact) => origin.eq_ignore_ascii_case(exact),
            OriginPattern::Wildcard { prefix, suffix } => {
                origin.len() > prefix.len() + suffix.len()
                    && origin[..prefix.len()].eq_ignore_ascii_case(prefix)
                    && origin[origin.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> OriginPattern {
        OriginPattern::parse(p).unwrap()
    }

    #[test]
    fn origins_match_exactly_or_by_one_wildcard() {
        let exact = pattern("https://App.example.com");
        assert!(exact.matches(b"https://app.example.com"));
        assert!(!exact.matches(b"https://app.example.com.evil.net"));
        assert!(!exact.matches(b"http://app.example.com"));
        let wildcard = pattern("https://*.example.com");
        assert!(wildcard.matches(b"https://a.example.com"));
        assert!(wildcard.matches(b"https://a.b.example.com"));
        assert!(!wildcard.matches(b"https://.example.com"));
        assert!(!wildcard.matches(b"https://example.com"));
        assert!(!wildcard.matches(b"https://a.example.com.evil.net"));
        assert!(!wildcard.matches(b"http://a.example.com"));
        assert_eq!(pattern("*"), OriginPattern::Any);
    }

    #[test]
    fn bad_entries_are_refused_with_their_key() {
        let config = |origins: &[&str], headers: &[&str]| CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            max_age: None,
        };
        assert!(layer(&config(&[], &["Authorization"])).unwrap().is_none());
        assert!(layer(&config(&["https://*.example.com"], &["Authorization", "*"])).is_ok());
        let error = layer(&config(&["https://*.*.com"], &[])).unwrap_err();
        assert!(error.starts_with("allowed_origins: "), "{error}");
        let error = layer(&config(&[""], &[])).unwrap_err();
        assert!(error.starts_with("allowed_origins: "), "{error}");
        let error = layer(&config(&["*"], &["bad header"])).unwrap_err();
        assert!(error.starts_with("allowed_headers: "), "{error}");
    }
}
