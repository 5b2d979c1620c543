//! The reference realtime server behind `serve`, started in-process from a [`Config`]. The
//! router is assembled here, in one place, from the route table of `routes.rs`.

pub mod access;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod feed;
pub mod handshake;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod open;
pub mod origin;
pub mod realtime;
pub mod rest;
pub mod routes;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{MethodRouter, get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::exit::CommandError;
use crate::store::Store;
use crate::store::metered::MeteredStore;
use auth::Secrets;
pub use cluster::Io;
pub use config::{
    AdapterConfig, Config, DEFAULT_ADAPTER_PREFIX, DEFAULT_ADAPTER_TIMEOUT, EngineConfig,
    LimitsConfig, PoolConfig, SecretsConfig, StoreConfig,
};
use limits::Limits;
use metrics::Metrics;
pub use open::{OpenedStore, open_store};
use origin::OriginPolicy;
use routes::Route;

/// What every handler shares.
pub struct App {
    pub store: Arc<dyn Store>,
    pub secrets: Secrets,
    pub metrics: Metrics,
    pub limits: Limits,
    pub origins: OriginPolicy,
    pub engine_path: String,
    /// Whether the dev-only routes are mounted (and so documented in `/openapi.json`).
    pub dev: bool,
    /// The database announces every new message (`feed.rs` emits them), so the REST route
    /// stores without emitting: one `serverMessage` per message.
    /// Cleared by the listener if the trigger is removed while serving.
    pub messages_from_database: Arc<std::sync::atomic::AtomicBool>,
    /// With an adapter shared by several nodes: this node's name among them. A socket of this
    /// node that joins a chat's room also joins the chat's room on this node (`room@node`), so
    /// a broadcast goes to this node's sockets at once and to the other nodes' through the
    /// adapter, excepting that room (`delivery::to_room`).
    pub node_id: Option<String>,
}

#[derive(Clone)]
pub struct AppState(Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// State of the REST handlers: the app, and the Socket.IO server to broadcast through.
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub io: Io,
}

/// Bind with a deep accept queue: a connect storm of thousands of sessions per second overflows
/// a shallow one, and every overflowed SYN costs its client a one-second retransmit.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    // The kernel caps this at net.core.somaxconn.
    socket.listen(8192)
}

/// A server started in this process: what `serve` runs until a signal, and what tests and the
/// load test's `embedded` target start on an ephemeral port.
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
    io: Io,
    app: AppState,
}

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR`, the base URL for REST calls and for the Socket.IO client.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The shared state, for tests and the embedded load-test target (e.g. to read metrics).
    pub fn app(&self) -> &AppState {
        &self.app
    }
    /// The Socket.IO server (and its adapter), for benches and tests that broadcast directly.
    pub fn io(&self) -> &cluster::Io {
        &self.io
    }
    /// Sockets currently connected to this node's default namespace.
    pub fn socket_count(&self) -> usize {
        self.io.local_socket_count()
    }
    /// Stop accepting, close every socket and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.housekeeping.abort();
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!("connections did not close within 10 s; dropping them");
                self.task.abort();
            }
        }
    }
}

/// Start a server as `config` says, on its own tasks; it runs until [`RunningServer::shutdown`].
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    config.check_exposure()?;
    let secrets = config.secrets.resolve(config.dev)?;
    let path = config.engine.mounted_path()?;
    let opened = open_store(&config.store, config.dev).await?;

    let mut metrics = Metrics::new(config.metrics_room_labels);
    let store = Arc::new(MeteredStore::new(opened.store, metrics.registry_mut()));
    let app = AppState(Arc::new(App {
        store,
        secrets,
        metrics,
        limits: Limits::new(&config.limits),
        origins: OriginPolicy::for_server(&config.allowed_origins, config.dev),
        engine_path: path.clone(),
        dev: config.dev,
        messages_from_database: opened
            .messages
            .as_ref()
            .map(|m| m.announcing.clone())
            .unwrap_or_default(),
        node_id: (!matches!(config.adapter, config::AdapterConfig::Local))
            .then(|| format!("{:016x}", fastrand::u64(..))),
    }));

    let engine = &config.engine;
    let (layer, io) = cluster::build(&config.adapter, engine, &path, app.clone()).await?;

    let http = HttpState {
        app: app.clone(),
        io: io.clone(),
    };
    let gate = handshake::Gate::new(app.clone(), io.clone(), engine.connect_timeout);
    // Routes sharing a path (GET and POST /api/chats) merge into one method router. Layers,
    // innermost first: the REST guard on matched routes only (an unknown route stays a 404),
    // socketioxide, the engine gate in front of it, and CORS around everything, refusals too.
    let api = Route::served(config.dev).fold(Router::new(), |router, route| {
        router.route(route.path(), handler(route))
    });
    let router = api
        .route_layer(axum::middleware::from_fn_with_state(
            http.clone(),
            rest::guard,
        ))
        // Outside the guard, so its refusals are counted too.
        .route_layer(axum::middleware::from_fn_with_state(
            http.clone(),
            rest::observe,
        ))
        .fallback(rest::not_found)
        .with_state(http);
    let router = layer
        .wrap(router)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            handshake::engine_gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            origin::cors,
        ));

    let listener = bind(config.listen).map_err(|e| {
        CommandError::usage(format!(
            "cannot listen on {}: {e} (is another server running there? try --listen 127.0.0.1:0)",
            config.listen
        ))
    })?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let closing_io = io.clone();
    let connection_limits = listener::ConnectionLimits {
        header_read_timeout: config.limits.header_read_timeout,
        max_connections_per_ip: config.limits.max_connections_per_ip,
    };
    let task = tokio::spawn(listener::serve(
        listener,
        router,
        app.clone(),
        connection_limits,
        async move {
            let _ = shutdown_rx.await;
        },
        // Open websockets would keep the graceful shutdown waiting forever.
        async move { closing_io.close().await },
    ));
    let housekeeping_app = app.clone();
    let feed = opened.messages.map(|source| {
        let (messages, listener) = source.start();
        let emitter = tokio::spawn(feed::run(messages, io.clone(), app.clone()));
        (listener, emitter)
    });
    let housekeeping = tokio::spawn(async move {
        // The feed's tasks live as long as the server: aborting this task drops them.
        let _feed = feed.map(|(listener, emitter)| (AbortOnDrop(listener), AbortOnDrop(emitter)));
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            housekeeping_app.limits.forget_idle();
        }
    });
    Ok(RunningServer {
        addr,
        shutdown: Some(shutdown_tx),
        task,
        housekeeping,
        io,
        app,
    })
}

/// Ends a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The handler of each route of the table (`routes.rs`); `apidoc::server_doc` documents the
/// same table.
fn handler(route: Route) -> MethodRouter<HttpState> {
    match route {
        Route::Healthz => get(rest::healthz),
        Route::Metrics => get(rest::metrics),
        Route::OpenApi => get(rest::openapi),
        Route::Docs => get(rest::docs),
        Route::ListChats => get(rest::list_chats),
        Route::CreateChat => post(rest::create_chat),
        Route::GetChat => get(rest::get_chat),
        Route::PostMessage => post(rest::post_message),
        Route::DevLogin => post(rest::dev_login),
        Route::DevCreateChat => post(rest::dev_create_chat),
        Route::DevBan => post(rest::dev_ban),
    }
}
