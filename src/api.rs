//! The gardener report on the admin port: `GET /v1/signatures` (JSON array,
//! filters `service`, `category`, `priority`, `since`), `GET /v1/report`
//! (JSON; `?format=markdown` for Markdown) and `GET /ui` (the web page).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gardener_processor::report::{parse_rfc3339, SignatureEntry};
use serde::Deserialize;

use crate::enrich::Enricher;

const UI_HTML: &str = include_str!("ui.html");

pub fn router(enricher: Arc<Enricher>) -> Router {
    Router::new()
        .route("/v1/signatures", get(signatures))
        .route("/v1/report", get(report))
        .route("/ui", get(ui))
        .with_state(enricher)
}

#[derive(Debug, Default, Deserialize)]
pub struct SignatureFilter {
    pub service: Option<String>,
    pub category: Option<String>,
    pub priority: Option<String>,
    /// RFC 3339 or unix seconds: only signatures last seen at or after it.
    pub since: Option<String>,
}

/// `since` as unix nanoseconds.
fn parse_since(since: &str) -> Option<u64> {
    since
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1_000_000_000))
        .or_else(|| parse_rfc3339(since))
}

impl SignatureFilter {
    fn keep(&self, e: &SignatureEntry, since: Option<u64>) -> bool {
        self.service.as_ref().is_none_or(|s| e.services.contains(s))
            && self.category.as_ref().is_none_or(|c| &e.category == c)
            && self
                .priority
                .as_ref()
                .is_none_or(|p| e.priority.eq_ignore_ascii_case(p))
            && since.is_none_or(|t| parse_rfc3339(&e.last_seen).is_some_and(|l| l >= t))
    }
}

async fn signatures(
    State(enricher): State<Arc<Enricher>>,
    Query(filter): Query<SignatureFilter>,
) -> Response {
    let since = match filter.since.as_deref().map(|s| (s, parse_since(s))) {
        Some((s, None)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("since={s}: expected RFC 3339 or unix seconds\n"),
            )
                .into_response()
        }
        Some((_, t)) => t,
        None => None,
    };
    let report = enricher.report();
    let rows: Vec<SignatureEntry> = report
        .signatures
        .into_iter()
        .filter(|e| filter.keep(e, since))
        .collect();
    Json(rows).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

async fn report(State(enricher): State<Arc<Enricher>>, Query(q): Query<ReportQuery>) -> Response {
    let report = enricher.report();
    match q.format.as_deref() {
        Some("markdown") | Some("md") => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response(),
        None | Some("json") => Json(report).into_response(),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("format={other}: expected json or markdown\n"),
        )
            .into_response(),
    }
}

async fn ui() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        UI_HTML,
    )
}
