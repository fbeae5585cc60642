//! `collab`: the collaborative editor's server. See `collab --help`.

use clap::Parser;
use collab::{serve, Cli, Config};
use leptos::prelude::get_configuration;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fix_mmap_threshold();
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

/// Keeps glibc from holding on to large freed blocks. Each password hash
/// allocates 19 MiB (Argon2); glibc raises its mmap threshold after the
/// first such block is freed, after which every later one came from the
/// heap and stayed resident: 19 MiB more per sign-in, for ever. A fixed
/// threshold sends every large block back to the system when it is freed.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called first thing
    // in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
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
