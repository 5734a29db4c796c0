//! `log-gardener run`: wires receivers, queue, processor stage and exporters,
//! and shuts them down in order on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gardener_exporter::debug::DebugExporter;
use gardener_exporter::googlecloud::GoogleCloudExporter;
use gardener_exporter::otlp::config::renamed;
use gardener_exporter::otlp::google_auth::GoogleAuth;
use gardener_exporter::otlp::OtlpExporter;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Readiness};
use crate::config::Config;
use crate::enrich::Enricher;
use crate::pipeline::batcher::BatchPolicy;
use crate::pipeline::in_flight::{self, InFlightBytes};
use crate::pipeline::ingest::Ingest;
use crate::pipeline::memory::MemoryLimiter;
use crate::pipeline::{exporters, persistent, queue, stage};
use crate::receiver::grpc::{self, GrpcReceiver};
use crate::receiver::grpc_guard::GuardLayer;
use crate::receiver::grpc_server;
use crate::receiver::http::{self, HttpReceiver};
use crate::receiver::{cors, tls};
use crate::telemetry;

/// The largest HTTP/2 frame the OTLP/gRPC receiver accepts (its
/// SETTINGS_MAX_FRAME_SIZE; HTTP/2's default is 16 KiB).
///
/// Why larger: the HTTP/2 reader reads from the socket about one frame at a
/// time, so a 190 KB export of 512 records arrived in ~23 `recvfrom` calls
/// of 8–16 KB; with frames up to 1 MiB a client sends the message in one or
/// a few frames and it arrives in ~3 reads. On loopback that cut the
/// collector's CPU time per record by 1–8% (6 of 6 alternating runs of
/// 3,000 requests). Memory stays bounded by `max_recv_msg_size_mib` (a frame
/// is part of a message) and by the HTTP/2 flow-control windows.
const GRPC_MAX_FRAME_BYTES: u32 = 1 << 20;

/// Runs the collector until SIGTERM/SIGINT, then drains within the grace period.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let telemetry = telemetry::install()?;
    let (queue_tx, queue_rx) = queue::bounded(
        config.service.queue.max_batches,
        config.service.queue.max_bytes,
    );
    let memory = MemoryLimiter::new(
        config.service.memory_limit_mib,
        config.service.memory_limit_cgroup_share,
    );
    let stop_memory = CancellationToken::new();
    tokio::spawn(memory.clone().run(stop_memory.clone()));
    if memory.limit_bytes() > 0 {
        tracing::info!(limit_bytes = memory.limit_bytes(), "memory limiter on");
    }

    let routing = config.routing()?;
    for name in &routing.unused_exporters {
        tracing::warn!(exporter = %name, "in no pipeline (service.pipelines): not started");
    }
    let mut exporter_handles = Vec::new();
    if routing.uses("debug") {
        exporter_handles.push(
            exporters::spawn(
                DebugExporter::new(std::io::stdout()),
                64,
                config.service.queue.max_bytes,
                None,
            )
            .taking(|signal| routing.takes("debug", signal)),
        );
    }
    let stop_exporters = CancellationToken::new();
    for (name, otlp) in &config.exporters.otlp {
        if !routing.uses(name) {
            continue;
        }
        // Label values are `'static`; a configured name lives as long as
        // the process anyway.
        let name: &'static str = Box::leak(name.clone().into_boxed_str());
        let mut exporter = OtlpExporter::new(otlp)
            .map_err(|e| anyhow::anyhow!(renamed(&format!("{e:#}"), name)))
            .with_context(|| format!("exporters.{name}"))?
            .with_name(name)
            .with_shutdown(stop_exporters.clone());
        if let Some(google) = otlp.auth.as_ref().and_then(|auth| auth.google.as_ref()) {
            let auth = GoogleAuth::new(google)
                .await
                .with_context(|| format!("exporters.{name}"))?;
            tracing::info!(
                exporter = name,
                ?auth,
                "OTLP exporter sends Google credentials"
            );
            exporter = exporter.with_google_auth(Arc::new(auth));
        }
        exporter_handles.push(
            exporters::spawn(
                exporter,
                otlp.queue_capacity(),
                otlp.sending_queue.max_bytes,
                BatchPolicy::from_config(&otlp.sending_queue.batch),
            )
            .taking(|signal| routing.takes(name, signal)),
        );
    }
    let in_flight = InFlightBytes::new(in_flight::limit_for(
        config.service.in_flight_max_bytes,
        memory.limit_bytes(),
    ));
    let mut ingest = Ingest::new(queue_tx.clone(), memory.clone(), in_flight);
    let persistent = match &config.service.queue.persistent {
        Some(persistent_config) => {
            let (appender, persistent) =
                persistent::start(persistent_config, queue_tx.clone(), exporter_handles.len())
                    .await?;
            ingest = ingest.with_persistent(appender);
            Some(persistent)
        }
        None => None,
    };
    let exporter_handles = Arc::new(exporter_handles);
    if exporter_handles.is_empty() {
        tracing::info!("no log or trace exporter: records are counted into metrics, then dropped");
    }
    let enricher = Arc::new(
        Enricher::new(
            &config.processors.gardener,
            |signal| exporter_handles.iter().any(|e| e.takes(signal)),
            |signal| routing.route(signal).enriched,
        )
        .map_err(|e| config.processor_error(&e))?,
    );
    let workers = match config.service.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let worker_tasks = stage::spawn_workers(
        workers,
        queue_rx,
        enricher.clone(),
        exporter_handles.clone(),
    );
    let stop_evaluation = CancellationToken::new();
    let evaluation_task = tokio::spawn(enricher.clone().evaluate_periodically(
        ingest.clone(),
        Duration::from_secs(1),
        stop_evaluation.clone(),
    ));

    let stop_push = CancellationToken::new();
    let mut push_tasks = Vec::new();
    if let Some(gc) = &config.exporters.googlecloud {
        let exporter = GoogleCloudExporter::new(gc.clone(), telemetry.snapshots.clone())
            .await
            .context("exporters.googlecloud")?;
        push_tasks.push(tokio::spawn(exporter.run(stop_push.clone())));
    }

    let protocols = &config.receivers.otlp.protocols;
    let readiness =
        Readiness::new(protocols.grpc.is_some() as usize + protocols.http.is_some() as usize);
    let stop_receivers = CancellationToken::new();
    let stop_admin = CancellationToken::new();

    let admin_listener = bind(&config.service.admin.endpoint, "service.admin").await?;
    let admin_router = admin::router(AdminState {
        prometheus: telemetry.prometheus.clone(),
        readiness: readiness.clone(),
        queue: queue_tx.clone(),
        enricher: Some(enricher.clone()), // gardener report
    });
    let admin_task = tokio::spawn({
        let stop = stop_admin.clone();
        async move {
            axum::serve(admin_listener, admin_router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    let mut receiver_tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    if let Some(grpc_config) = &protocols.grpc {
        let listener = bind(&grpc_config.endpoint, "receivers.otlp.protocols.grpc").await?;
        let routes = grpc::routes(
            GrpcReceiver {
                ingest: ingest.clone(),
            },
            grpc_config.max_recv_msg_size_mib * 1024 * 1024,
            grpc_config.auth_token.as_deref().map(Arc::from),
            |signal| routing.route(signal).received,
        );
        let tls = match &grpc_config.tls {
            Some(tls) => {
                let tls = tls::load("receivers.otlp.protocols.grpc.tls", tls)
                    .map_err(anyhow::Error::msg)?;
                tracing::info!(mutual = tls.mutual(), "OTLP/gRPC receiver uses TLS");
                Some(tls.grpc_server_config())
            }
            None => None,
        };
        let guard = GuardLayer::new(
            grpc_config.max_concurrent_requests,
            grpc_config.read_timeout,
        )
        .with_admission(ingest.clone());
        let settings = grpc_server::ConnectionSettings {
            max_frame_size: GRPC_MAX_FRAME_BYTES,
            max_concurrent_streams: grpc_config.max_concurrent_streams,
            keepalive_interval: grpc_config.keepalive_interval,
            keepalive_timeout: grpc_config.keepalive_timeout,
            max_connection_age: grpc_config.max_connection_age,
            max_connection_age_grace: grpc_config.max_connection_age_grace,
            max_connection_idle: grpc_config.max_connection_idle,
        };
        let stop = stop_receivers.clone();
        readiness.receiver_listening();
        tracing::info!(endpoint = %grpc_config.endpoint, "OTLP/gRPC receiver listening");
        receiver_tasks.push(tokio::spawn(async move {
            grpc_server::serve(
                listener,
                routes,
                guard,
                tls,
                settings,
                stop.cancelled_owned(),
            )
            .await
            .context("OTLP/gRPC receiver failed")
        }));
    }
    if let Some(http_config) = &protocols.http {
        let listener = bind(&http_config.endpoint, "receivers.otlp.protocols.http").await?;
        let tls = match &http_config.tls {
            Some(tls) => Some(
                tls::load("receivers.otlp.protocols.http.tls", tls).map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        if let Some(tls) = &tls {
            tracing::info!(mutual = tls.mutual(), "OTLP/HTTP receiver uses TLS");
        }
        let paths = http_config.url_paths().map_err(anyhow::Error::msg)?;
        let router = http::router(
            HttpReceiver {
                ingest: ingest.clone(),
                max_body: http_config.max_request_body_size,
                auth_token: http_config.auth_token.as_deref().map(Arc::from),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    http_config.max_concurrent_requests,
                )),
                read_timeout: http_config.read_timeout,
            },
            &paths,
            |signal| routing.route(signal).received,
        );
        let cors = http_config.cors.as_ref().map(cors::layer).transpose();
        let router = match cors.map_err(anyhow::Error::msg)?.flatten() {
            Some(layer) => router.layer(layer),
            None => router,
        };
        let read_header_timeout = http_config.read_header_timeout;
        let stop = stop_receivers.clone();
        readiness.receiver_listening();
        tracing::info!(endpoint = %http_config.endpoint, "OTLP/HTTP receiver listening");
        receiver_tasks.push(tokio::spawn(async move {
            tls::serve_http(
                listener,
                router,
                tls,
                read_header_timeout,
                stop.cancelled_owned(),
            )
            .await
            .context("OTLP/HTTP receiver failed")
        }));
    }
    drop(ingest);
    tracing::info!(
        admin = %config.service.admin.endpoint,
        workers,
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        "log-gardener ready"
    );

    shutdown_signal().await;
    let grace = config.service.shutdown_grace_period;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining accepted data"
    );
    let deadline = Instant::now() + grace;
    if let Some(persistent) = &persistent {
        // What is still on disk stays there for the next start.
        persistent.stop_feeding();
    }
    // Exporters keep retrying while the queue drains, and give up just before
    // the deadline so that what they hold is counted rather than cut off.
    tokio::spawn({
        let stop = stop_exporters.clone();
        let give_up = deadline - grace.min(Duration::from_millis(500));
        async move {
            tokio::time::sleep_until(give_up).await;
            stop.cancel();
        }
    });
    readiness.shutting_down();
    stop_evaluation.cancel();
    let _ = evaluation_task.await;
    queue_tx.close();
    stop_receivers.cancel();
    for task in receiver_tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "receiver stopped with an error"),
            Ok(_) => {}
            Err(_) => tracing::warn!("a receiver did not stop within the grace period"),
        }
    }
    let left_in_queue = queue_tx.clone();
    drop(queue_tx);
    let mut left_behind = drain(worker_tasks, exporter_handles, deadline).await;
    if !left_behind.is_empty() {
        left_behind.insert(0, ("pipeline", left_in_queue.records()));
    }
    // With a persistent queue the records are still on disk (kept, sent
    // after the restart); without one they are lost (dropped).
    let (counter, fate) = match persistent {
        Some(_) => (telemetry::PERSISTENT_KEPT, "stay in the persistent queue"),
        None => (telemetry::DROPPED_RECORDS, "are counted as dropped"),
    };
    for (stage, records) in left_behind.into_iter().filter(|(_, n)| *n > 0) {
        tracing::warn!(
            stage,
            records,
            "grace period over; records not yet delivered {fate}"
        );
        metrics::counter!(counter, "reason" => "shutdown_timeout", "exporter" => stage)
            .increment(records as u64);
    }
    if let Some(persistent) = persistent {
        persistent.close().await;
    }
    // Counters are final now: one last push, then stop serving /metrics.
    stop_push.cancel();
    for task in push_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    stop_memory.cancel();
    stop_admin.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_task).await;
    tracing::info!("log-gardener stopped");
    Ok(())
}

/// Waits for the workers to empty the queue, then for the exporters to
/// flush. Empty when everything was delivered in time; otherwise the records
/// each exporter still held, by exporter name (the caller adds what is left
/// in the pipeline queue).
async fn drain(
    workers: Vec<JoinHandle<()>>,
    exporter_handles: Arc<Vec<exporters::ExporterHandle>>,
    deadline: Instant,
) -> Vec<(&'static str, usize)> {
    let held = |handles: &[exporters::ExporterHandle]| -> Vec<(&'static str, usize)> {
        handles
            .iter()
            .map(|h| (h.name, h.pending_records()))
            .collect()
    };
    for worker in workers {
        if tokio::time::timeout_at(deadline, worker).await.is_err() {
            return held(&exporter_handles);
        }
    }
    let handles = match Arc::try_unwrap(exporter_handles) {
        Ok(handles) => handles,
        Err(shared) => return held(&shared),
    };
    // Close every exporter's channel first: each exporter ends after
    // delivering what its channel holds.
    let closing: Vec<_> = handles.into_iter().map(|h| h.close()).collect();
    let mut left = Vec::new();
    for mut exporter in closing {
        // Past the deadline this only checks whether the task has ended.
        if tokio::time::timeout_at(deadline, &mut exporter.join)
            .await
            .is_err()
        {
            tracing::warn!(
                exporter = exporter.name,
                "exporter did not flush within the grace period"
            );
            left.push((exporter.name, exporter.pending_records()));
        }
    }
    left
}

async fn bind(endpoint: &str, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(endpoint)
        .await
        .with_context(|| format!("{key}: cannot listen on {endpoint}"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
