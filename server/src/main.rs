//! `collab`: the HTTP server of the collaborative document editor.
//!
//! Server-renders the Leptos [`app::App`], serves the hydration bundle and
//! assets from the cargo-leptos site root, answers `GET /healthz`, and shuts
//! down gracefully on Ctrl-C / SIGTERM. Configuration (`LEPTOS_SITE_ADDR`,
//! `LEPTOS_SITE_ROOT`, …) comes from the environment that cargo-leptos sets;
//! logging is filtered by `RUST_LOG` (default `info`).

use app::{shell, App};
use axum::{routing::get, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let conf = get_configuration(None).expect("read Leptos configuration from LEPTOS_* env");
    let leptos_options = conf.leptos_options;
    let addr = leptos_options.site_addr;
    let site_root = leptos_options.site_root.clone();
    let routes = generate_route_list(App);

    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes(&leptos_options, routes, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|err| panic!("bind {addr}: {err}"));
    tracing::info!(%addr, %site_root, "listening");

    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .expect("HTTP server failed");
    tracing::info!("shut down cleanly");
}

/// Resolves on the first Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("install Ctrl-C handler");
    };

    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
