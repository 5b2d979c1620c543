//! Opening the store a [`StoreConfig`] names: the SQLite file or memory store (migrated, seeded
//! when new), or SC Market's PostgreSQL (checked, never altered; created only by `--init`),
//! with the feed of new messages when its notify trigger is installed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use super::config::StoreConfig;
use crate::exit::{CommandError, ExitCode};
use crate::protocol::ChatMessage;
use crate::store::fixtures::{DEMO_YAML, Fixtures};
use crate::store::postgres::{self, notify, schema};
use crate::store::{PostgresStore, SqliteStore, Store, StoreError};

/// A store ready to serve, and where new messages come from.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    /// Set when the database announces every new `messages` row (PostgreSQL with the notify
    /// trigger): then the feed, not the REST route, emits `serverMessage`, so a message is
    /// emitted once whoever inserted it. Start it with [`MessageSource::start`].
    pub messages: Option<MessageSource>,
}

/// The dedicated LISTEN connection's settings; started by the server, which owns the feed.
pub struct MessageSource {
    settings: postgres::ConnectionSettings,
    /// True while the trigger announces every message; the listener clears it when the
    /// trigger is removed under it, and the REST route emits again.
    pub announcing: Arc<AtomicBool>,
}

impl MessageSource {
    /// Start the listener; it runs until the receiver is dropped or the trigger is removed.
    pub fn start(self) -> (mpsc::Receiver<ChatMessage>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(notify::FEED_CAPACITY);
        let task = tokio::spawn(notify::listen(self.settings, tx, self.announcing));
        (rx, task)
    }
}

/// Open the store `config` names; errors carry the exit code a command should end with.
pub async fn open_store(config: &StoreConfig, dev: bool) -> anyhow::Result<OpenedStore> {
    if config.is_postgres() {
        return open_postgres(config, dev).await;
    }
    if config.init {
        return Err(CommandError::usage(
            "--init creates PostgreSQL tables; an SQLite database is created and seeded when new",
        )
        .into());
    }
    let store = open_sqlite(&config.database, config.seed.as_deref()).await?;
    Ok(OpenedStore {
        store: Arc::new(store),
        messages: None,
    })
}

/// Open the SQLite store, migrate, and seed it: the `seed` fixtures file when given, the demo
/// data when the database is new.
pub async fn open_sqlite(
    database: &str,
    seed: Option<&std::path::Path>,
) -> anyhow::Result<SqliteStore> {
    let (store, fresh) = SqliteStore::open(database)
        .await
        .map_err(|e| CommandError::usage(e.to_string()))?;
    if let Some(path) = seed {
        let fixtures = Fixtures::read(path).map_err(|e| CommandError::usage(e.to_string()))?;
        store
            .load_fixtures(&fixtures)
            .await
            .map_err(|e| CommandError::usage(format!("{}: {e}", path.display())))?;
        tracing::info!(seed = %path.display(), "loaded fixtures");
    } else if fresh {
        let demo = Fixtures::parse(DEMO_YAML, "demo data")?;
        store.load_fixtures(&demo).await?;
        tracing::info!(
            "new database: seeded the demo data (users alice, bob, carol, dave, erin, frank, admin)"
        );
    }
    Ok(store)
}

/// A store error at start as a command error: a bad URL is bad usage, an unreachable database
/// is "cannot connect".
pub fn connect_error(e: StoreError) -> CommandError {
    match e {
        StoreError::Invalid(message) => CommandError::usage(message),
        other => CommandError::new(ExitCode::Unreachable, other.to_string()),
    }
}

async fn open_postgres(config: &StoreConfig, dev: bool) -> anyhow::Result<OpenedStore> {
    if config.init && !dev {
        return Err(CommandError::usage(
            "--init creates tables and demo users: it is for development databases, with --dev",
        )
        .into());
    }
    let shown = postgres::redact(&config.database);
    let store = PostgresStore::connect(&config.database, &config.pool)
        .await
        .map_err(connect_error)?;
    let mut client = store.client().await.map_err(connect_error)?;
    let report = schema::check(&**client).await?;
    if config.init {
        if !report.existing_tables.is_empty() {
            return Err(CommandError::usage(format!(
                "--init refused: {shown} already has {} (it only creates tables in a database \
                 that has none of them; drop them or use another database)",
                report.existing_tables.join(", ")
            ))
            .into());
        }
        let tx = client.transaction().await?;
        tx.batch_execute(schema::DEV_SCHEMA).await.map_err(|e| {
            CommandError::new(
                ExitCode::Failure,
                format!("creating the tables: {}", postgres::describe(&e)),
            )
        })?;
        tx.commit().await?;
        tracing::info!(database = %shown, "--init: created the tables");
    } else if !report.usable() {
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        return Err(CommandError::usage(format!(
            "{shown} lacks what serve needs: {} (`scmarket-ws db check` lists it; a development \
             database can be created with --dev --init)",
            problems.join("; ")
        ))
        .into());
    }
    drop(client);
    let fixtures = match (&config.seed, config.init) {
        (Some(path), _) => Some(
            Fixtures::read(path)
                .map_err(|e| CommandError::usage(e.to_string()))
                .map(|f| (f, path.display().to_string()))?,
        ),
        (None, true) => Some((Fixtures::parse(DEMO_YAML, "demo data")?, "demo data".into())),
        (None, false) => None,
    };
    if let Some((fixtures, origin)) = fixtures {
        store
            .load_fixtures(&fixtures)
            .await
            .map_err(|e| CommandError::usage(format!("{origin}: {e}")))?;
        tracing::info!(seed = %origin, "loaded fixtures");
    }
    // Every connection opened and its lookups prepared now, not by the first handshakes and
    // joins after a start (docs/BENCHMARKS.md, "Admission and joins").
    let warm = config.pool.warm_count();
    if warm > 0 {
        match store.warm(warm).await {
            Ok(open) => tracing::info!(
                connections = open,
                "connection pool warmed: handshake and join lookups prepared on each connection"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "connection pool not fully warmed; lookups open and prepare what is missing on first use"
            ),
        }
    }
    let messages = if report.notify_installed {
        tracing::info!(
            "the notify trigger is installed: every new message is emitted from the database's \
             notifications"
        );
        Some(MessageSource {
            settings: store.connection_settings().clone(),
            announcing: Arc::new(AtomicBool::new(true)),
        })
    } else {
        tracing::info!(
            "the notify trigger is not installed: only messages posted through this server are \
             emitted (`scmarket-ws db install-notify` announces every insert)"
        );
        None
    };
    Ok(OpenedStore {
        store: Arc::new(store),
        messages,
    })
}
