//! `collab`: the collaborative editor's server. See `collab --help`.

use clap::Parser;
use collab::{serve, Cli, Config};
use leptos::prelude::get_configuration;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: with thousands of connections
/// and a frame allocated per message, the server spent 8 % less CPU per
/// change (docs/BENCHMARKS.md). Password threads hand their hashes'
/// memory back after each hash (`auth.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    let leptos = match get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(error) => {
            eprintln!("collab: reading the Leptos configuration: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = match Config::resolve(cli, leptos.site_addr) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("collab: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match serve(config, leptos).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("collab: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    server.shutdown().await;
    tracing::info!("shut down cleanly");
    std::process::ExitCode::SUCCESS
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns which.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        "SIGTERM"
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<&'static str>();
    tokio::select! {
        signal = ctrl_c => signal,
        signal = terminate => signal,
    }
}
