//! What a server is started with, apart from any command line: `serve` builds a [`Config`]
//! from its flags (`src/cli.rs`), while tests, examples and the load test's `embedded` target
//! build one directly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::auth::{self, Secrets};
use crate::exit::CommandError;
use crate::protocol;
pub use crate::store::postgres::PoolConfig;

/// Where `serve` listens when not told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7000);
/// The database `serve` opens when not told otherwise: a file in the working directory.
pub const DEFAULT_DATABASE: &str = "scmarket-ws.db";
/// The SQLite URL of a store that lives and dies with the server.
pub const IN_MEMORY_DATABASE: &str = "sqlite::memory:";

/// Everything `server::start` needs. `Default` is `serve` without flags: the production wire
/// contract's engine settings (`protocol.rs`), the production limits, no secrets (so it refuses
/// to start until some are given or `dev` is set).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one (`RunningServer::local_addr` tells which).
    pub listen: SocketAddr,
    /// Development mode: the fixed development secret when none is given, and the dev-only
    /// routes (`POST /api/dev/*`, see `server::routes`).
    pub dev: bool,
    /// Let a `dev` server listen on a non-loopback address. The dev routes log anyone in as
    /// any user (`admin` included), so without this a `dev` server refuses to be reachable
    /// from the network.
    pub dev_allow_remote: bool,
    pub store: StoreConfig,
    pub secrets: SecretsConfig,
    pub engine: EngineConfig,
    /// Origins allowed to open a socket besides same-origin requests and requests without an
    /// Origin header (the `no-origin-check` defect of ARCHITECTURE.md).
    pub allowed_origins: Vec<String>,
    pub limits: LimitsConfig,
    /// Rooms that get their own label in `/metrics`; later rooms are counted as `other`.
    pub metrics_room_labels: usize,
    /// How this node shares rooms with the other nodes of a deployment.
    pub adapter: AdapterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            dev: false,
            dev_allow_remote: false,
            store: StoreConfig::default(),
            secrets: SecretsConfig::default(),
            engine: EngineConfig::default(),
            allowed_origins: Vec::new(),
            limits: LimitsConfig::default(),
            metrics_room_labels: 100,
            adapter: AdapterConfig::Local,
        }
    }
}

/// Secrets shorter than this get a loud warning: HS256 and express-session's HMAC want at
/// least a hash's length of key to resist guessing. They are still used, since they must match
/// what SC Market's backend signs with.
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Refuse or warn about settings that expose the server: the dev routes on a non-loopback
    /// address (refused unless `dev_allow_remote`), and short secrets (warned).
    pub fn check_exposure(&self) -> Result<(), CommandError> {
        let remote = !self.listen.ip().is_loopback();
        if self.dev && remote {
            if !self.dev_allow_remote {
                return Err(CommandError::usage(format!(
                    "--dev on {}, a non-loopback address, would let anyone on the network log in \
                     as any user (admin included) through /api/dev/login; listen on 127.0.0.1, \
                     or pass --dev-allow-remote if that is really meant",
                    self.listen
                )));
            }
            tracing::warn!(
                listen = %self.listen,
                "DEVELOPMENT MODE ON A NON-LOOPBACK ADDRESS: anyone who reaches this server can \
                 log in as any user, admin included, through /api/dev/login"
            );
        }
        for (name, secret) in [
            ("session secret (SESSION_SECRET)", &self.secrets.session),
            ("JWT secret (JWT_SECRET)", &self.secrets.jwt),
        ] {
            if let Some(secret) = secret.as_deref().filter(|s| !s.is_empty())
                && secret.len() < MIN_SECRET_BYTES
            {
                tracing::warn!(
                    "WEAK SECRET: the {name} is {} bytes; cookies signed with fewer than {} \
                     bytes of secret can be forged by guessing it. Use a longer random secret \
                     (here and in SC Market's backend)",
                    secret.len(),
                    MIN_SECRET_BYTES
                );
            }
        }
        Ok(())
    }

    /// A throwaway development server: dev mode, an in-memory store seeded with the demo data,
    /// a free loopback port. What tests, examples and the load test's `embedded` target start.
    pub fn ephemeral_dev() -> Self {
        Config {
            listen: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            dev: true,
            store: StoreConfig {
                database: IN_MEMORY_DATABASE.to_string(),
                ..StoreConfig::default()
            },
            ..Config::default()
        }
    }
}

/// The Socket.IO adapter: where a broadcast goes beyond this process's own sockets.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AdapterConfig {
    /// This node alone: rooms live in its memory (one node per deployment).
    #[default]
    Local,
    /// Redis pub/sub (`socketioxide-redis` on the `fred` client): every node of a deployment
    /// uses the same Redis and `prefix`, and a broadcast, a room's disconnect or a fetch of
    /// sockets reaches every node. `timeout`: how long one publish may wait for Redis (queued
    /// while Redis is unreachable); past it the broadcast reaches this node's sockets only.
    Redis {
        url: String,
        prefix: String,
        timeout: Duration,
    },
    /// PostgreSQL LISTEN/NOTIFY (`socketioxide-postgres`), the same sharing over a database
    /// (measured against Redis in docs/BENCHMARKS.md).
    Postgres { url: String, prefix: String },
}

/// The channel prefix nodes share when none is given.
pub const DEFAULT_ADAPTER_PREFIX: &str = "scmarket-ws";

/// How long a publish may wait for Redis when none is given (`--adapter-timeout`): a node this
/// late is in trouble, but a broadcast that is merely slow on a busy node must still go out
/// (the redis crate's 500 ms default lost 14% of cross-node deliveries under load).
pub const DEFAULT_ADAPTER_TIMEOUT: Duration = Duration::from_secs(30);

impl AdapterConfig {
    /// From `--adapter`: `local`, a `redis://` / `rediss://` URL, or a `postgres://` one.
    pub fn parse(text: &str, prefix: &str) -> Result<AdapterConfig, CommandError> {
        if text == "local" {
            return Ok(AdapterConfig::Local);
        }
        let url = url::Url::parse(text).map_err(|e| {
            CommandError::usage(format!(
                "--adapter {text}: write `local` or a Redis URL such as redis://127.0.0.1:6379 ({e})"
            ))
        })?;
        match url.scheme() {
            "redis" | "rediss" => Ok(AdapterConfig::Redis {
                url: text.to_owned(),
                prefix: prefix.to_owned(),
                timeout: DEFAULT_ADAPTER_TIMEOUT,
            }),
            "postgres" | "postgresql" => Ok(AdapterConfig::Postgres {
                url: text.to_owned(),
                prefix: prefix.to_owned(),
            }),
            other => Err(CommandError::usage(format!(
                "--adapter {text}: scheme `{other}` is not an adapter: write `local`, redis://HOST:PORT or postgres://USER@HOST/DB"
            ))),
        }
    }
}

/// The store: SQLite (a file or in memory) or SC Market's PostgreSQL, by the database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// A file path (created and seeded with the demo data on first start), `sqlite://PATH`,
    /// `sqlite::memory:`, or `postgres://...` (the production tables, never created unless
    /// `init`).
    pub database: String,
    /// A YAML fixtures file loaded at start instead of the demo data (README, "Your own data").
    pub seed: Option<PathBuf>,
    /// PostgreSQL only: the connection pool.
    pub pool: PoolConfig,
    /// PostgreSQL only, development only: create the tables in a database that has none of
    /// them, and seed the demo data (or `seed`).
    pub init: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: DEFAULT_DATABASE.to_string(),
            seed: None,
            pool: PoolConfig::default(),
            init: false,
        }
    }
}

impl StoreConfig {
    pub fn is_postgres(&self) -> bool {
        crate::store::postgres::is_postgres_url(&self.database)
    }
}

/// The secrets that sign `scmarket.sid` session cookies and `scmarket.access` JWTs, as given;
/// [`SecretsConfig::resolve`] decides what a server (or `session-cookie`) signs with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretsConfig {
    pub session: Option<String>,
    /// Falls back to the session secret, as production's does.
    pub jwt: Option<String>,
}

impl std::fmt::Debug for SecretsConfig {
    /// Whether each secret is set, never its value: a `Config` may end up in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("SecretsConfig")
            .field("session", &shown(&self.session))
            .field("jwt", &shown(&self.jwt))
            .finish()
    }
}

impl SecretsConfig {
    /// The secrets to sign with. An empty secret counts as none; `dev` alone falls back to the
    /// fixed, loudly logged development secret. The errors name the flags and variables of
    /// `serve` and `session-cookie`, the only places a person gives secrets.
    pub fn resolve(&self, dev: bool) -> Result<Secrets, CommandError> {
        let session = self.session.clone().filter(|s| !s.is_empty());
        let jwt = self.jwt.clone().filter(|s| !s.is_empty());
        match (session, jwt) {
            (Some(session), jwt) => Ok(Secrets::new(session, jwt)),
            // Production's JWT secret may stand alone; sessions then need a secret too.
            (None, Some(jwt)) if !dev => Err(CommandError::usage(format!(
                "--jwt-secret is set but --session-secret is not: both cookie kinds need a secret \
                 (got a {}-character JWT secret). Set SESSION_SECRET too, or use --dev",
                jwt.len()
            ))),
            (None, jwt) if dev => {
                tracing::warn!(
                    "DEVELOPMENT MODE: cookies are signed with the fixed development secret; \
                     never expose this server"
                );
                Ok(Secrets::new(auth::DEV_SECRET.to_string(), jwt))
            }
            _ => Err(CommandError::usage(
                "no session secret: set SESSION_SECRET (and JWT_SECRET) or pass --session-secret, \
                 or run with --dev for a throwaway development secret",
            )),
        }
    }
}

/// The Engine.IO settings a client sees in the OPEN packet, and where the engine is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Engine.IO request path (an absolute path; a trailing `/` is ignored).
    pub path: String,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Time a client has to send the namespace CONNECT after the engine opens.
    pub connect_timeout: Duration,
    /// Largest engine payload in bytes (also the largest websocket message and frame).
    pub max_payload: u64,
    /// Packets queued per socket for a client that does not keep up; a socket whose queue is
    /// full when a message is broadcast is disconnected (`server/delivery.rs`).
    pub socket_buffer: usize,
}

/// Packets queued per socket by default: a burst of 1024 chat messages to one client between
/// two of its reads (about 0.5 MB at a typical 500-byte `serverMessage`, 3 MB at the largest,
/// and only while that client lags: the queue allocates as it fills).
pub const DEFAULT_SOCKET_BUFFER: usize = 1024;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: protocol::ENGINE_PATH.to_string(),
            ping_interval: protocol::DEFAULT_PING_INTERVAL,
            ping_timeout: protocol::DEFAULT_PING_TIMEOUT,
            connect_timeout: protocol::DEFAULT_CONNECT_TIMEOUT,
            max_payload: protocol::DEFAULT_MAX_PAYLOAD,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
        }
    }
}

impl EngineConfig {
    /// The request path as mounted: absolute, without a trailing `/`.
    pub fn mounted_path(&self) -> Result<String, CommandError> {
        let path = &self.path;
        let trimmed = path.trim().trim_end_matches('/');
        if !trimmed.starts_with('/') || trimmed.len() < 2 || trimmed.contains(['?', '#', ' ']) {
            return Err(CommandError::usage(format!(
                "--path {path:?} must be an absolute path such as /ws"
            )));
        }
        Ok(trimmed.to_string())
    }
}

/// Rates and caps that protect a production server; a rate of 0 (or a cap of 0) turns that
/// limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// New handshakes per second from one IP address.
    pub handshake_rate: u32,
    /// Handshakes one IP address may make in a burst above the steady rate.
    pub handshake_burst: u32,
    /// Events per second one socket may send.
    pub event_rate: u32,
    /// Events one socket may send in a burst above the steady rate.
    pub event_burst: u32,
    /// Open sockets per user.
    pub max_connections_per_user: u32,
    /// Concurrent TCP connections from one IP address, websockets included.
    pub max_connections_per_ip: u32,
    /// Time a connection has to send a complete request head, from its open or the end of its
    /// previous answer; slow and idle connections are closed after it (zero: no limit).
    pub header_read_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            handshake_rate: 50,
            handshake_burst: 200,
            event_rate: 20,
            event_burst: 60,
            max_connections_per_user: 32,
            max_connections_per_ip: 256,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl LimitsConfig {
    /// Every limit off: for a load test, which comes from one IP and is meant to find the
    /// server's limits, not the rate limiter's.
    pub fn off() -> Self {
        LimitsConfig {
            handshake_rate: 0,
            event_rate: 0,
            max_connections_per_user: 0,
            max_connections_per_ip: 0,
            ..LimitsConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_paths() {
        let path = |p: &str| {
            EngineConfig {
                path: p.into(),
                ..EngineConfig::default()
            }
            .mounted_path()
        };
        assert_eq!(path("/ws").unwrap(), "/ws");
        assert_eq!(path("/realtime/").unwrap(), "/realtime");
        for bad in ["ws", "/", "", "/a b", "/ws?x"] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets() {
        let given = |session: Option<&str>, jwt: Option<&str>| SecretsConfig {
            session: session.map(Into::into),
            jwt: jwt.map(Into::into),
        };
        assert!(given(Some("s"), None).resolve(false).is_ok());
        assert!(given(Some("s"), Some("j")).resolve(false).is_ok());
        assert!(given(None, None).resolve(false).is_err());
        assert!(
            given(Some(""), None).resolve(false).is_err(),
            "empty is none"
        );
        assert!(given(None, Some("j")).resolve(false).is_err());
        assert!(given(None, Some("j")).resolve(true).is_ok());
        assert!(given(None, None).resolve(true).is_ok());
    }

    #[test]
    fn dev_on_a_remote_address_needs_an_explicit_flag() {
        let mut config = Config {
            dev: true,
            listen: "0.0.0.0:7000".parse().unwrap(),
            ..Config::default()
        };
        let refused = config.check_exposure().unwrap_err().to_string();
        assert!(refused.contains("--dev-allow-remote"), "{refused}");
        config.dev_allow_remote = true;
        assert!(config.check_exposure().is_ok());
        config.dev_allow_remote = false;
        config.dev = false;
        assert!(config.check_exposure().is_ok(), "no dev routes, no refusal");
        config.dev = true;
        config.listen = "[::1]:7000".parse().unwrap();
        assert!(config.check_exposure().is_ok(), "IPv6 loopback");
    }

    #[test]
    fn debug_hides_secret_values() {
        let config = Config {
            secrets: SecretsConfig {
                session: Some("hunter2-session".into()),
                jwt: None,
            },
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("session: \"set\""), "{shown}");
    }
}
