//! `serve`: start the reference server and run it until SIGINT or SIGTERM.

use crate::cli::ServeArgs;
use crate::server::{self, Config};

/// `serve`: run until SIGINT or SIGTERM, then shut down gracefully.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::from(args);
    let dev = config.dev;
    let path = config.engine.path.clone();
    let server = server::start(config).await?;
    tracing::info!(
        "listening on {} (Socket.IO at ws://{}{}){}",
        server.http_url(),
        server.local_addr(),
        path.trim_end_matches('/'),
        if dev {
            "; dev helpers on /api/dev/*"
        } else {
            ""
        }
    );
    shutdown_signal().await;
    tracing::info!("shutting down: closing sockets");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
