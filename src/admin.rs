//! The admin endpoint (default :9464): Prometheus `/metrics`, `/healthz`, `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::pipeline::queue::QueueSender;
use crate::telemetry;

/// Ready once every receiver listens, and no longer once shutdown begins, so
/// that load balancers stop sending before the listeners close.
#[derive(Default)]
pub struct Readiness {
    pending_receivers: AtomicUsize,
    shutting_down: AtomicBool,
}

impl Readiness {
    pub fn new(receivers: usize) -> Arc<Self> {
        Arc::new(Self {
            pending_receivers: AtomicUsize::new(receivers),
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn receiver_listening(&self) {
        self.pending_receivers.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.pending_receivers.load(Ordering::Acquire) == 0
            && !self.shutting_down.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
pub struct AdminState {
    pub prometheus: PrometheusHandle,
    pub readiness: Arc<Readiness>,
    pub queue: QueueSender,
    /// gardener report: serves /v1/signatures, /v1/report and /ui when set.
    pub enricher: Option<Arc<crate::enrich::Enricher>>,
}

pub fn router(state: AdminState) -> Router {
    // gardener report routes (src/api.rs)
    let api = state.enricher.clone().map(crate::api::router);
    let router = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    match api {
        Some(api) => router.merge(api),
        None => router,
    }
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    metrics::gauge!(telemetry::QUEUE_DEPTH).set(state.queue.depth() as f64);
    metrics::gauge!(telemetry::QUEUE_BYTES).set(state.queue.bytes() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
