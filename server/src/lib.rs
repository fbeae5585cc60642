//! The app server of the collaborative editor.
//!
//! - [`config`]: flags, environment and file.
//! - [`store`]: the database (sea-orm; SQLite or PostgreSQL) and its migrations.
//! - [`document`]: the registry of open documents and their actors, each the
//!   only writer of its document.
//! - [`ws`]: the WebSocket protocol (`docs/PROTOCOL.md`); [`outlet`]: a
//!   connection's way out, written straight into its socket when idle.
//! - [`api`]: documents over HTTP.
//! - [`auth`]: accounts and sessions; [`auth_routes`]: the same over HTTP,
//!   and share links.
//! - [`access`]: access changes told to open connections (everywhere).
//! - [`security`]: security headers, CSRF and `Origin` checks, limits.
//! - [`backend`]: the same operations for the Leptos app's server functions.
//! - [`cluster`]: cluster mode: leases, heartbeats, the snapshot cache (Redis).
//! - [`metrics`]: Prometheus metrics.
//! - [`error`]: the crate's one error type.
//!
//! [`serve`] puts them together behind one axum router with the
//! server-rendered app.

pub mod access;
pub mod api;
pub mod auth;
pub mod auth_routes;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod document;
pub mod error;
pub mod metrics;
pub mod outlet;
pub mod security;
pub mod store;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::{shell, App};
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::sync::watch;

pub use config::{Cli, ClusterConfig, Config};
use document::Documents;
pub use error::Error;
pub use metrics::Metrics;
use store::Store;

/// What every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub documents: Documents,
    pub accounts: auth::Accounts,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<security::ConnectionLimits>,
}

/// A running server.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    documents: Documents,
    accounts: auth::Accounts,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops gracefully: every document writes its last snapshot and closes
    /// its connections (code 1012), then the listener stops.
    pub async fn shutdown(self) {
        self.documents.shutdown().await;
        if let Some(heartbeat) = self.heartbeat {
            heartbeat.abort();
        }
        self.sweeper.abort();
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(Err(error))) => tracing::error!(%error, "server stopped with an error"),
            Err(_) => tracing::warn!("connections did not close in time"),
            _ => {}
        }
    }

    /// The documents (for tests and tools).
    pub fn documents(&self) -> &Documents {
        &self.documents
    }

    /// The accounts (for tests and tools: sign up without HTTP).
    pub fn accounts(&self) -> &auth::Accounts {
        &self.accounts
    }
}

/// Connections the kernel queues for the listener before the server accepts
/// them (capped by `net.core.somaxconn`). Tokio's `TcpListener::bind` asks
/// for 128, as the standard library does: a burst of clients connecting at
/// once (an app server's documents failing over to this one, a deploy, a
/// thousand editors opening their documents) overflowed it, and each
/// overflow cost the client a retransmitted handshake a second later, which
/// nginx's 1 s connect timeout counts as the app server being down.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and
/// `SO_REUSEADDR`, as `TcpListener::bind` sets it).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connects the database, builds the router and starts serving.
pub async fn serve(config: Config, leptos_options: LeptosOptions) -> Result<Server, Error> {
    let store = Store::connect(&config.database_url).await?;
    tracing::info!(database = store.backend(), "database ready");
    let listener = listen(config.addr)?;
    let addr = listener.local_addr()?;
    let (cluster, heartbeat) = match &config.cluster {
        Some(c) => {
            let advertise = if c.advertise_addr.is_empty() {
                addr.to_string()
            } else {
                c.advertise_addr.clone()
            };
            let cluster = cluster::Cluster::connect(&c.redis_url, &c.node_id, &advertise, c.lease_ttl).await?;
            let heartbeat = cluster.heartbeat();
            tracing::info!(node = %c.node_id, %advertise, "cluster mode");
            (Some(cluster), Some(heartbeat))
        }
        None => (None, None),
    };
    let metrics = Arc::new(Metrics::default());
    let access = match &config.cluster {
        Some(c) => access::Access::cluster(&c.redis_url).await?,
        None => access::Access::local(),
    };
    let accounts = auth::Accounts::new(store.clone(), config.security.session_ttl);
    let sweeper = accounts.sweep_expired();
    let documents = Documents::new(store, config.documents.clone(), cluster, metrics.clone(), access);
    let state = AppState {
        leptos_options: leptos_options.clone(),
        documents: documents.clone(),
        accounts: accounts.clone(),
        config: Arc::new(config),
        metrics,
        limits: Arc::default(),
    };
    let backend = backend::shared(documents.clone(), accounts.clone());
    let routes = generate_route_list(App);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .route("/ws", get(ws::upgrade))
        .route("/ws/d/{document}", get(ws::upgrade_document))
        .merge(api::routes())
        .merge(auth_routes::routes())
        .leptos_routes_with_context(&state, routes, move || provide_context(backend.clone()), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::protect))
        .with_state(state);

    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        // Keystrokes are small frames: send each at once, never held back
        // waiting for the previous one's acknowledgement (Nagle).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, "listening");
    Ok(Server {
        addr,
        documents,
        accounts,
        stop,
        task,
        heartbeat,
        sweeper,
    })
}

/// `GET /readyz`: 200 when the database (and Redis, in cluster mode) answer.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> axum::http::StatusCode {
    if state.documents.ready().await {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /metrics`: Prometheus text format.
async fn render_metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections beyond tokio's default backlog (128) waits in
    /// the kernel's queue until the server accepts it: nothing accepts here,
    /// and every connect must still complete at once. (With a backlog of
    /// 128 the rest wait for a retransmitted handshake, a second or more.)
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_listen_queue() {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        // Within the kernel's cap and a default limit of 1,024 open files.
        let burst = 500.min(somaxconn - 1);
        assert!(burst > 128, "net.core.somaxconn is {somaxconn}: raise it to test this");
        let listener = listen("127.0.0.1:0".parse().expect("an address")).expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let connects =
            (0..burst).map(|_| tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)));
        let connected = futures_util::future::join_all(connects)
            .await
            .into_iter()
            .filter(|c| matches!(c, Ok(Ok(_))))
            .count();
        assert_eq!(connected, burst, "connections dropped from the listen queue");
    }
}
