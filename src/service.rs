//! `crisis-pulse run`: the live Kafka driver. A dedicated thread owns the consumer and the
//! synchronous [`Pipeline`] (no async hop per event: that is what keeps the cost per event
//! near a bare consumer's); the async shell serves HTTP and turns a shutdown future into a
//! stop flag with a drain deadline.
//!
//! Delivery guarantees: see `docs/state.md`. Without a state directory (at least once): an offset is stored only when every window the
//! records before it fed has closed and the resulting crisis events (and dead letters) are
//! acknowledged by the broker. If the process dies between windows, the open windows' input
//! is re-read from the last committed offset on restart and those windows are recomputed, so
//! a crisis due at their close is published then; a crisis already published may be
//! published again, with the same deterministic `event_id`/`crisis_id` (dedup by id).

pub mod checkpoint;
mod consume;
pub mod group;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::pipeline::WindowReport;

pub use consume::Summary;

/// Options of a service run beyond the configuration file.
#[derive(Default)]
pub struct ServiceOptions {
    /// Listen address for HTTP (`None`: `http.addr` from the configuration; port 0 is fine).
    pub http_addr: Option<String>,
    /// Receives every closed window (tests and benches compare them with a replay). Bounded:
    /// a slow receiver holds the consumer back; a dropped one is ignored.
    pub windows: Option<std::sync::mpsc::SyncSender<WindowReport>>,
    /// Checkpoint directory (`None`: `[state] dir` from the configuration, if any).
    pub state_dir: Option<std::path::PathBuf>,
    /// Ignore an existing checkpoint and start fresh (it is overwritten by the next one).
    pub reset_state: bool,
}

/// A started service.
pub struct Running {
    pub http_addr: SocketAddr,
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    done: tokio::sync::oneshot::Receiver<anyhow::Result<Summary>>,
    http_stop: tokio::sync::oneshot::Sender<()>,
    http_task: tokio::task::JoinHandle<()>,
    deadline: Duration,
}

/// Starts HTTP and the consumer thread.
pub async fn start(cfg: &Config, opts: ServiceOptions) -> anyhow::Result<Running> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let (http_stop, http_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = opts
        .http_addr
        .clone()
        .unwrap_or_else(|| cfg.http.addr.clone());
    let (http_addr, http_task) = http::serve(
        &addr,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        async move {
            let _ = http_rx.await;
        },
    )
    .await
    .with_context(|| format!("binding {addr}"))?;
    if cfg.kafka.mode == crate::source::kafka_config::GroupMode::Group {
        crate::admin::ensure_group_topics(&cfg.kafka).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, done) = tokio::sync::oneshot::channel();
    let worker = consume::Worker::new(
        cfg,
        metrics.clone(),
        ready.clone(),
        stop.clone(),
        opts.windows,
        opts.state_dir.or_else(|| cfg.state.dir.clone()),
        opts.reset_state,
    )?;
    std::thread::Builder::new()
        .name("crisis-pulse-consumer".into())
        .spawn(move || {
            let r = worker.run();
            if let Err(e) = &r {
                tracing::error!(error = %e, "consumer stopped");
            }
            let _ = tx.send(r);
        })?;
    metrics.up.set(1);
    Ok(Running {
        http_addr,
        metrics,
        ready,
        stop,
        done,
        http_stop,
        http_task,
        deadline: std::time::Duration::from_millis(
            cfg.kafka.drain_timeout.as_millis().max(0) as u64
        ) + Duration::from_secs(5),
    })
}

impl Running {
    /// Asks the consumer thread to stop (idempotent).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Runs until `shutdown` completes or the consumer fails, then drains within the deadline.
    pub async fn until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Summary> {
        let early = tokio::select! {
            _ = shutdown => None,
            r = &mut self.done => Some(r),
        };
        self.stop();
        tracing::info!("shutting down: draining");
        let r = match early {
            Some(r) => r.context("consumer thread vanished")?,
            None => match tokio::time::timeout(self.deadline, &mut self.done).await {
                Ok(r) => r.context("consumer thread vanished")?,
                Err(_) => anyhow::bail!("drain deadline of {:?} passed", self.deadline),
            },
        };
        self.metrics.up.set(0);
        let _ = self.http_stop.send(());
        let _ = self.http_task.await;
        r
    }
}

/// Starts the service and runs it until `shutdown`.
pub async fn run(
    cfg: &Config,
    opts: ServiceOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    start(cfg, opts).await?.until(shutdown).await
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal during start-up (state restore, group join) then stops the service
/// cleanly instead of killing it with the default action. Must be called inside a Tokio
/// runtime (`Runtime::enter`).
pub fn signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let installed = crate::http::Signals::install();
    async move {
        match installed {
            Ok(mut s) => s.recv().await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for signals; stop with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    }
}
