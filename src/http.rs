//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (process alive),
//! `/readyz` (partitions assigned and consuming; in the demo, the pipeline has started).
//!
//! Async drivers call [`serve`]; synchronous ones (demo, replay) start a [`Background`]
//! server on its own thread and runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Shared state behind the endpoint.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Metrics,
    /// Set by the driver when it is consuming (Kafka: partitions assigned).
    pub ready: Arc<AtomicBool>,
}

impl HttpState {
    /// Not ready until the driver says so.
    pub fn new(metrics: Metrics) -> Self {
        HttpState {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown` completes. Returns the bound address (port 0
/// picks a free port) and the server task.
pub async fn serve(
    addr: &str,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, state, shutdown)
}

fn serve_on(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let local = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
    Ok((local, task))
}

/// SIGINT and SIGTERM handlers, installed when created (so no signal between installing and
/// waiting can kill the process with the default action).
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside a Tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = self.term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How a [`Background`] server should stop.
enum Stop {
    Now,
    OnSignal,
}

/// The endpoint on its own thread and single-threaded runtime, for synchronous drivers.
pub struct Background {
    addr: SocketAddr,
    stop: oneshot::Sender<Stop>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    /// Binds `addr` now (so a busy port is an immediate error) and starts serving.
    pub fn start(addr: &str, state: HttpState) -> std::io::Result<Background> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = oneshot::channel::<Stop>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                rt.block_on(async move {
                    let started = tokio::net::TcpListener::from_std(std_listener).and_then(|l| {
                        let local = l.local_addr()?;
                        serve_on(l, state, stop_when(rx, local))
                    });
                    let task = match started {
                        Ok((local, task)) => {
                            let _ = addr_tx.send(Ok(local));
                            task
                        }
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = task.await;
                })
            })?;
        let addr = addr_rx
            .recv()
            .map_err(|_| std::io::Error::other("HTTP thread exited"))??;
        Ok(Background {
            addr,
            stop: tx,
            thread,
        })
    }

    /// The bound address (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving now and waits for in-flight requests.
    pub fn stop(self) {
        let _ = self.stop.send(Stop::Now);
        let _ = self.thread.join();
    }

    /// Keeps serving until SIGINT or SIGTERM, then returns.
    pub fn hold(self) {
        let _ = self.stop.send(Stop::OnSignal);
        let _ = self.thread.join();
    }
}

async fn stop_when(rx: oneshot::Receiver<Stop>, addr: SocketAddr) {
    match rx.await {
        Ok(Stop::OnSignal) => {
            // Logged only once the handlers are in place: whoever waits for this line may
            // signal right away.
            match Signals::install() {
                Ok(mut s) => {
                    tracing::info!(%addr, "holding: still serving /metrics until SIGINT or SIGTERM");
                    s.recv().await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for signals; not holding"),
            }
        }
        Ok(Stop::Now) | Err(_) => {}
    }
}
