//! The command line: one Args struct per command, and the option groups they share.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::protocol;
use crate::server::config::DEFAULT_SOCKET_BUFFER;
use crate::server::{
    AdapterConfig, Config, EngineConfig, LimitsConfig, PoolConfig, SecretsConfig, StoreConfig,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure at run time (a failed threshold, a server error)
  2  bad usage: a flag, file or scenario that cannot be used
  3  refused: the handshake was answered with HTTP 400/401/403 or a CONNECT_ERROR
  4  cannot connect: unreachable host, connection refused, TLS error
  5  timed out, or an expected count was not reached";

#[derive(Debug, Parser)]
#[command(
    name = "scmarket-ws",
    version,
    about = "Test and operate SC Market's Socket.IO realtime layer",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the realtime server (production wire contract) on an embedded SQLite store or on
    /// SC Market's own PostgreSQL.
    Serve(ServeArgs),
    /// SC Market's PostgreSQL: check the tables serve needs, install or remove the trigger that
    /// announces new messages.
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a valid session cookie for a user of a serve database, for scripts.
    #[command(visible_alias = "session")]
    SessionCookie(SessionArgs),
    /// Open one session and report the engine handshake and its timings.
    Connect(ConnectArgs),
    /// Join (or leave) chat rooms and report what the server answered.
    Join(JoinArgs),
    /// Stream the events a session receives, as text or NDJSON.
    Listen(ListenArgs),
    /// OpenAPI/AsyncAPI documentation of the realtime layer, generated from the protocol types.
    Spec(SpecArgs),
    /// Drive sessions from a YAML scenario and report connection and delivery metrics
    /// (exit 0: every threshold holds, 1: a threshold fails, 2: bad scenario).
    LoadTest(LoadTestArgs),
    /// Show, merge and compare saved load-test reports.
    Report(ReportArgs),
    /// Audit a deployment's realtime layer: named checks of refusals, Origin, joins, payload
    /// and known production defects (exit 0: nothing fails, 1: a check fails).
    Check(CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) on stdout.
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Install, e.g.:
  scmarket-ws completions bash > ~/.local/share/bash-completion/completions/scmarket-ws
  scmarket-ws completions zsh > ~/.zfunc/_scmarket-ws      # with fpath+=(~/.zfunc) before compinit
  scmarket-ws completions fish > ~/.config/fish/completions/scmarket-ws.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl Command {
    /// Whether the command was asked for JSON output, so its failure is printed as JSON too.
    pub fn json_output(&self) -> bool {
        match self {
            Command::Connect(a) => a.client.json,
            Command::Join(a) => a.client.json,
            Command::Listen(a) => a.client.json,
            Command::Check(a) => a.json,
            Command::Report(ReportArgs {
                command: ReportCommand::Show { json, .. },
            }) => *json,
            _ => false,
        }
    }
}

use crate::duration::parse as parse_duration;
use crate::store::postgres::default_pool_size;

/// Where the store lives and which secrets sign its cookies: shared by `serve` and `session`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database: an SQLite file path (created and seeded with demo data on first start),
    /// `sqlite://PATH`, `sqlite::memory:` for a throwaway run, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` for SC Market's own tables.
    #[arg(long, env = "SCMARKET_WS_DATABASE", default_value = "scmarket-ws.db")]
    pub database: String,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Secret that signs `scmarket.sid` session cookies (env SESSION_SECRET).
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,
    /// Secret that signs `scmarket.access` JWTs (env JWT_SECRET; falls back to the session secret).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Development mode: a fixed, loudly logged secret when none is given, and the dev-only
    /// helpers `POST /api/dev/login` and `POST /api/dev/chats`.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is logged).
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,
    /// Engine.IO request path.
    #[arg(long, default_value = protocol::ENGINE_PATH)]
    pub path: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Load your own users, chats, orders and offers from a YAML fixtures file (see README).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// PostgreSQL, with --dev only: create the tables in a database that has none of them and
    /// seed the demo data (or --seed). Refused when any of the tables exists.
    #[arg(long)]
    pub init: bool,
    /// Let --dev listen on a non-loopback address (refused otherwise): its dev routes log
    /// anyone in as any user.
    #[arg(long, requires = "dev")]
    pub dev_allow_remote: bool,
    /// Engine ping interval.
    #[arg(long, value_parser = parse_duration, default_value = "25s")]
    pub ping_interval: Duration,
    /// Engine ping timeout.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub ping_timeout: Duration,
    /// Time a client has to send the namespace CONNECT after the engine opens.
    #[arg(long, value_parser = parse_duration, default_value = "45s")]
    pub connect_timeout: Duration,
    /// Largest engine payload in bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_PAYLOAD)]
    pub max_payload: u64,
    /// Packets queued per socket for a client that reads slower than messages arrive; a socket
    /// whose queue is full when a message is broadcast to it is disconnected (never skipped).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000), default_value_t = DEFAULT_SOCKET_BUFFER as u64)]
    pub socket_buffer: u64,
    /// An Origin allowed to open a socket (repeatable). Requests without an Origin header and
    /// same-origin requests are always allowed; any other Origin is refused with HTTP 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// New handshakes per second allowed from one IP address (0 turns the limit off).
    #[arg(long, default_value_t = 50)]
    pub handshake_rate: u32,
    /// Handshakes one IP address may make in a burst above the steady rate.
    #[arg(long, default_value_t = 200)]
    pub handshake_burst: u32,
    /// Events per second one socket may send (0 turns the limit off).
    #[arg(long, default_value_t = 20)]
    pub event_rate: u32,
    /// Events one socket may send in a burst above the steady rate.
    #[arg(long, default_value_t = 60)]
    pub event_burst: u32,
    /// Open sockets allowed per user (0 means no cap).
    #[arg(long, default_value_t = 32)]
    pub max_connections_per_user: u32,
    /// Concurrent TCP connections allowed from one IP address, websockets included (0 means no
    /// cap); past it, a new connection is closed at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_ip: u32,
    /// Time a connection has to send a complete request head, from its open or the end of its
    /// previous answer; slower (slowloris) and idle connections are closed (0s: no limit).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// Distinct rooms that get their own label in /metrics; messages to later rooms are
    /// counted under room="other" so the metric's cardinality stays bounded.
    #[arg(long, default_value_t = 100)]
    pub metrics_room_labels: usize,
    /// How this node shares rooms with the other nodes of a deployment: `local` (this node
    /// alone), a Redis URL (redis://127.0.0.1:6379; Redis 7 or later) or a PostgreSQL URL
    /// (LISTEN/NOTIFY), through which a broadcast and a ban's disconnect reach every node.
    #[arg(long, value_name = "local|redis://HOST:PORT|postgres://...", default_value = "local",
          value_parser = parse_adapter)]
    pub adapter: AdapterConfig,
    /// Prefix of the adapter's Redis channels: every node of one deployment uses the same, and
    /// two deployments on one Redis use different ones.
    #[arg(long, value_name = "PREFIX", default_value = crate::server::DEFAULT_ADAPTER_PREFIX)]
    pub adapter_prefix: String,
    /// Redis adapter: how long one broadcast may wait for Redis (it is queued while Redis is
    /// unreachable and sent once the node has reconnected); past it, the broadcast reaches
    /// this node's sockets only and the others miss it (logged).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub adapter_timeout: Duration,
}

fn parse_adapter(text: &str) -> Result<AdapterConfig, String> {
    AdapterConfig::parse(text, crate::server::DEFAULT_ADAPTER_PREFIX).map_err(|e| e.to_string())
}

/// The PostgreSQL connection pool (ignored for SQLite).
#[derive(Debug, Clone, Args)]
pub struct PoolArgs {
    /// PostgreSQL: most connections open at once (default: twice this machine's cores, 4 to
    /// 32; size it to the database host's cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub pool_size: Option<u16>,
    /// PostgreSQL, `serve`: connections opened at start, each with the handshake and join
    /// lookups prepared and run once, so the first sessions after a start do not pay for it;
    /// connections the pool adds later are warmed the same way (default: all of --pool-size;
    /// 0: open them on demand, unprepared).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub pool_warm: Option<u16>,
    /// PostgreSQL: how long a lookup waits for a free connection.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub pool_wait_timeout: Duration,
    /// PostgreSQL: how long opening one connection may take.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub db_connect_timeout: Duration,
    /// PostgreSQL: how long one lookup or write may take in all; past it the handshake or
    /// join is refused with `store_error`.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub db_query_timeout: Duration,
}

impl From<&PoolArgs> for PoolConfig {
    fn from(args: &PoolArgs) -> Self {
        PoolConfig {
            size: args.pool_size.map_or_else(default_pool_size, usize::from),
            warm: args.pool_warm.map(usize::from),
            wait_timeout: args.pool_wait_timeout,
            connect_timeout: args.db_connect_timeout,
            query_timeout: args.db_query_timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Say whether every table and column serve needs exists with a type it can use, what is
    /// missing, and whether the notify trigger is installed (exit 0: usable, 1: not).
    Check(DbArgs),
    /// Add the trigger that notifies serve of every new message (idempotent).
    InstallNotify(DbArgs),
    /// Remove that trigger and its function (idempotent).
    UninstallNotify(DbArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
    #[arg(long, env = "SCMARKET_WS_DATABASE")]
    pub database: String,
    /// How long connecting may take.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub db_connect_timeout: Duration,
}

impl StoreArgs {
    /// The secrets as given; `SecretsConfig::resolve` applies `--dev`'s fallback.
    pub fn secrets(&self) -> SecretsConfig {
        SecretsConfig {
            session: self.session_secret.clone(),
            jwt: self.jwt_secret.clone(),
        }
    }
}

/// `serve`'s flags as the library's server configuration: the one place a command line becomes
/// a `server::Config`.
impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Config {
            listen: args.listen,
            dev: args.store.dev,
            dev_allow_remote: args.dev_allow_remote,
            secrets: args.store.secrets(),
            store: StoreConfig {
                pool: PoolConfig::from(&args.store.pool),
                database: args.store.database,
                seed: args.seed,
                init: args.init,
            },
            engine: EngineConfig {
                path: args.path,
                ping_interval: args.ping_interval,
                ping_timeout: args.ping_timeout,
                connect_timeout: args.connect_timeout,
                max_payload: args.max_payload,
                socket_buffer: usize::try_from(args.socket_buffer).unwrap_or(usize::MAX),
            },
            allowed_origins: args.allowed_origins,
            limits: LimitsConfig {
                handshake_rate: args.handshake_rate,
                handshake_burst: args.handshake_burst,
                event_rate: args.event_rate,
                event_burst: args.event_burst,
                max_connections_per_user: args.max_connections_per_user,
                max_connections_per_ip: args.max_connections_per_ip,
                header_read_timeout: args.header_read_timeout,
            },
            metrics_room_labels: args.metrics_room_labels,
            adapter: match args.adapter {
                AdapterConfig::Redis { url, .. } => AdapterConfig::Redis {
                    url,
                    prefix: args.adapter_prefix,
                    timeout: args.adapter_timeout,
                },
                AdapterConfig::Postgres { url, .. } => AdapterConfig::Postgres {
                    url,
                    prefix: args.adapter_prefix,
                },
                AdapterConfig::Local => AdapterConfig::Local,
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Username to log in as (must exist, unless --dev creates it).
    #[arg(long)]
    pub user: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Which cookie to print: the `scmarket.sid` session cookie or the `scmarket.access` JWT.
    #[arg(long, value_enum, default_value = "sid")]
    pub kind: CookieKind,
    /// How long the session (or token) stays valid.
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    pub ttl: Duration,
    /// Print only the cookie value, not `NAME=VALUE`.
    #[arg(long)]
    pub value_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CookieKind {
    Sid,
    Jwt,
}

fn parse_transport(text: &str) -> Result<crate::client::Transport, String> {
    text.parse()
}

/// How to reach a realtime server and who to be there: shared by connect, join and listen.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL: http://, https://, ws:// or wss://HOST[:PORT][/PATH]. The engine path is
    /// /ws unless the URL or --path names another.
    pub url: String,
    /// Engine.IO request path.
    #[arg(long)]
    pub path: Option<String>,
    /// Cookie for the handshake, NAME=VALUE (repeatable; several may be joined with ';').
    #[arg(
        long = "cookie",
        value_name = "NAME=VALUE",
        env = "SCMARKET_WS_COOKIE",
        hide_env_values = true
    )]
    pub cookies: Vec<String>,
    /// JWT sent as the scmarket.access cookie.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SCMARKET_WS_JWT",
        hide_env_values = true
    )]
    pub jwt: Option<String>,
    /// Extra handshake header, 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Origin header to send (the reference server refuses unknown origins with HTTP 403).
    #[arg(long)]
    pub origin: Option<String>,
    /// Socket.IO auth payload (JSON) sent with the namespace CONNECT. SC Market ignores it.
    #[arg(long, value_name = "JSON")]
    pub auth: Option<String>,
    /// Log in as this demo user first (POST /api/dev/login on a serve --dev) and use its cookies.
    #[arg(long, value_name = "USERNAME")]
    pub login: Option<String>,
    /// websocket (default), polling, or upgrade (polling first, then websocket).
    #[arg(long, value_parser = parse_transport, default_value = "websocket")]
    pub transport: crate::client::Transport,
    /// Time allowed to connect (engine open and namespace CONNECT together).
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Print JSON (NDJSON for streams) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The most the server may send at once (a websocket message, a polling answer), in bytes;
    /// a smaller maxPayload announced by the server lowers it. More ends the session with an
    /// error instead of taking the memory.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_PAYLOAD, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_payload: u64,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Keep the session open this long, printing pings and the disconnect reason.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub hold: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_CODES)]
pub struct JoinArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Chat ids (UUIDs) whose rooms to join.
    #[arg(required = true, value_name = "CHAT_ID")]
    pub chat_ids: Vec<String>,
    /// Leave the rooms instead of joining them.
    #[arg(long)]
    pub leave: bool,
    #[command(flatten)]
    pub room: RoomArgs,
}

/// How room requests are sent: shared by `join` and `listen`.
#[derive(Debug, Clone, Args)]
pub struct RoomArgs {
    /// How long to wait for the server's acknowledgement after the last send. Production never
    /// acknowledges; the reference server does.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub ack_wait: Duration,
    /// Send an unacknowledged room request again at 25 ms, 50 ms, 100 ms... after the first,
    /// up to this long, until one is acknowledged: a server that registers its listeners late
    /// (production) drops the first ones. 0 sends once.
    #[arg(long, value_parser = parse_duration, default_value = "1600ms", value_name = "DURATION")]
    pub resend_until: Duration,
    /// Send chat ids lower-cased. Without it they are sent as typed, and an id that is not
    /// lower-case gets a warning: production joins the room named exactly as sent, which
    /// never receives messages.
    #[arg(long)]
    pub normalize_ids: bool,
}

impl RoomArgs {
    /// The resend schedule these flags ask for.
    pub fn resend(&self) -> crate::client::rooms::Resend {
        crate::client::rooms::Resend::doubling(Duration::from_millis(25), self.resend_until)
    }
}

#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ListenArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Join this chat's room after connecting, and again after each reconnect (repeatable).
    #[arg(long = "room", value_name = "CHAT_ID")]
    pub rooms: Vec<String>,
    /// Show only this event (repeatable); others are still received and counted as skipped.
    #[arg(long = "event", value_name = "NAME")]
    pub events: Vec<String>,
    /// Stop after this many shown events; exit 5 if --duration ends first.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Exit (code 1) when the connection drops instead of reconnecting.
    #[arg(long)]
    pub no_reconnect: bool,
    /// First reconnect delay; it doubles on each failed attempt (with jitter).
    #[arg(long, value_parser = parse_duration, default_value = "500ms", value_name = "DURATION")]
    pub reconnect_delay: Duration,
    /// Longest reconnect delay.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub reconnect_max_delay: Duration,
    /// Reconnect attempts in a row before giving up (0: never give up).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub reconnect_attempts: u32,
    #[command(flatten)]
    pub room: RoomArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    #[command(subcommand)]
    pub command: SpecCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SpecCommand {
    /// Print the websocket part of the OpenAPI document: the three schemas, the
    /// `serverMessage` webhook and the `x-websocket` extension.
    Websocket(SpecOutputArgs),
    /// Merge the websocket documentation into a REST OpenAPI document (JSON or YAML), as the
    /// backend's mergeWebSocketDocumentation does.
    Merge(SpecMergeArgs),
    /// Exit 1 with a diff when FILE's websocket part differs from what `spec websocket` prints
    /// (a CI drift check).
    Check(SpecCheckArgs),
    /// Print the same contract as an AsyncAPI 3.0 document.
    Asyncapi(SpecOutputArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SpecOutputArgs {
    /// Output format (default: yaml when -o ends in .yaml/.yml, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<SpecFormat>,
    /// Write to FILE (atomically: a failed run leaves no file) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SpecMergeArgs {
    /// The REST OpenAPI document to merge into (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub base: PathBuf,
    /// Websocket documentation to merge instead of the generated one (a `spec websocket` output).
    #[arg(long, value_name = "FILE")]
    pub websocket: Option<PathBuf>,
    #[command(flatten)]
    pub output: SpecOutputArgs,
    /// What to do when the merge replaces a schema, webhook or `x-websocket` the base already had
    /// with a different value: report it on stderr, or fail (exit 1, no output).
    #[arg(long, value_enum, default_value = "warn")]
    pub on_conflict: OnConflict,
    /// Raise the document's `openapi` version (webhooks and `type: [..., "null"]` need 3.1),
    /// converting OpenAPI 3.0 `nullable: true` schemas to the 3.1 form.
    #[arg(long, value_name = "VERSION", value_parser = ["3.1.0", "3.1.1"])]
    pub openapi_version: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SpecCheckArgs {
    /// An OpenAPI document (JSON or YAML), merged or as printed by `spec websocket`.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpecFormat {
    Json,
    Yaml,
}

impl From<SpecFormat> for crate::apidoc::document::Format {
    fn from(format: SpecFormat) -> Self {
        match format {
            SpecFormat::Json => Self::Json,
            SpecFormat::Yaml => Self::Yaml,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    Warn,
    Error,
}

#[derive(Debug, Clone, Args)]
pub struct LoadTestArgs {
    /// The scenario file (YAML; see scenarios/ for examples).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Override a scenario field before validation, by dotted path (repeatable):
    /// `--set phases.0.vus=10`, `--set name=nightly`, `--set setup.rooms=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run against this URL instead of the scenario's target (e.g. http://127.0.0.1:7000);
    /// repeat it for the nodes of one deployment (virtual users are spread over them).
    #[arg(long, value_name = "URL")]
    pub target: Vec<String>,
    /// Run shard K of N of the scenario (1 <= K <= N): every Nth arrival, virtual user and room,
    /// so that N generators (on N machines) run one test; `report merge` joins their reports.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::loadtest::shard::Shard>,
    /// Fork N worker processes of this binary, each running its share of the scenario (arrival
    /// rate, virtual users, rooms), and merge their reports into one (1 to 64). Past one
    /// process's open-file limit, or its cores.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::loadtest::workers::MAX_WORKERS)))]
    pub workers: u32,
    /// Run as a worker of `--workers`: progress as JSON lines on stdout, no printed report.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Write the JSON report here (schema: docs/REPORT_SCHEMA.md).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page with charts over time.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Length of the report's time-series intervals, from 100ms to 1h. Intervals start on
    /// multiples of it on the wall clock, so the reports of generators run together merge
    /// interval by interval.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Validate the scenario and print the plan (phases, scenario weights, expected sessions)
    /// without connecting anywhere.
    #[arg(long)]
    pub check: bool,
    /// Runtime worker threads for the generator (default: one per core). One thread costs about
    /// a fifth less CPU when the generator is lightly loaded (docs/BENCHMARKS.md); keep the
    /// default for connect storms and for `target: embedded`, which shares them with the server.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Addresses of this machine the sessions' connections leave from, dealt round-robin by
    /// virtual user (repeatable; each a comma-separated list of addresses, IPv4 ranges
    /// `127.0.0.2-127.0.0.50` and blocks `127.0.1.0/24`; at most 65,536). One address holds at
    /// most ~28,000 connections to one server port, and new connections slow down past ~14,000
    /// (see README "Past one process"). Default: the system's choice.
    #[arg(long = "local-ips", value_name = "IPS")]
    pub local_ips: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Print a saved report as tables (or as JSON).
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the report's JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Combine reports of generators that ran the same scenario together into one result:
    /// histograms added, counters summed, thresholds re-evaluated (exit 1 if one fails).
    Merge {
        #[arg(value_name = "FILE", required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write one self-contained HTML page (no network needed to view it) with the run summary,
    /// thresholds and charts over time; several reports are drawn on the same axes.
    Html {
        #[arg(value_name = "FILE", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Where to write the page.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// The page's title (default: the scenario names).
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
    },
    /// Compare NEW against BASE metric by metric; exit 1 when one is worse by more than
    /// --max-regression.
    Compare {
        #[arg(value_name = "BASE")]
        base: PathBuf,
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// Largest accepted worsening, relative to BASE (e.g. 10%).
        #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent)]
        max_regression: f64,
    },
}

const CHECK_EXIT_CODES: &str = "\
Exit codes:
  0  no check failed (warnings and skipped checks do not fail)
  1  a check failed
  2  bad usage: a flag that cannot be used, an unknown check id, a dev login on a server
     without the dev routes
  3  refused: the server refused user A's or B's credentials, so nothing could be checked
  4  cannot connect: the URL cannot be reached (connection refused, DNS, TLS)
  5  timed out: the URL did not answer in time";

/// `check URL`: the flags of a deployment audit (README, "check").
#[derive(Debug, Clone, Args)]
#[command(after_help = CHECK_EXIT_CODES)]
pub struct CheckArgs {
    /// The deployment: http://, https://, ws:// or wss://HOST[:PORT][/PATH]. The engine path is
    /// /ws unless the URL or --path names another.
    pub url: String,
    /// Engine.IO request path.
    #[arg(long)]
    pub path: Option<String>,
    /// User A's cookie, NAME=VALUE (repeatable; several may be joined with ';').
    #[arg(
        long = "cookie",
        value_name = "NAME=VALUE",
        env = "SCMARKET_WS_COOKIE",
        hide_env_values = true
    )]
    pub cookies: Vec<String>,
    /// User A's access token, sent as the scmarket.access cookie.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SCMARKET_WS_JWT",
        hide_env_values = true
    )]
    pub jwt: Option<String>,
    /// Log in as user A through POST /api/dev/login (serve --dev only).
    #[arg(long, value_name = "USERNAME")]
    pub login: Option<String>,
    /// User B's cookie (B takes no part in A's chat), NAME=VALUE (repeatable).
    #[arg(
        long = "other-cookie",
        value_name = "NAME=VALUE",
        env = "SCMARKET_WS_OTHER_COOKIE",
        hide_env_values = true
    )]
    pub other_cookies: Vec<String>,
    /// User B's access token.
    #[arg(
        long = "other-jwt",
        value_name = "TOKEN",
        env = "SCMARKET_WS_OTHER_JWT",
        hide_env_values = true
    )]
    pub other_jwt: Option<String>,
    /// Log in as user B through POST /api/dev/login (serve --dev only).
    #[arg(long = "other-login", value_name = "USERNAME")]
    pub other_login: Option<String>,
    /// A session cookie of a banned account (NAME=VALUE), which the handshake must refuse.
    #[arg(
        long = "banned-cookie",
        value_name = "NAME=VALUE",
        env = "SCMARKET_WS_BANNED_COOKIE",
        hide_env_values = true
    )]
    pub banned_cookie: Option<String>,
    /// A chat user A takes part in (for the viewing rule, a direct chat B is not in).
    #[arg(long, value_name = "CHAT_ID")]
    pub chat: Option<String>,
    /// An Origin the deployment allows (its web client's), for the CORS check.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// The Origin sent as a hostile page's.
    #[arg(long, value_name = "ORIGIN", default_value = crate::check::config::DEFAULT_FOREIGN_ORIGIN)]
    pub foreign_origin: String,
    /// Allow posting messages (marked "scmarket-ws check ...") to the chat, as user A and B.
    #[arg(long)]
    pub post: bool,
    /// Allow requests that crash a server with production's crash-on-null-join defect.
    #[arg(long)]
    pub destructive: bool,
    /// The secret that signs the deployment's access tokens, to make an expired one.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SCMARKET_WS_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// An expired access token the deployment signed (instead of --jwt-secret).
    #[arg(long, value_name = "TOKEN")]
    pub expired_jwt: Option<String>,
    /// A shell command that makes the deployment store a message in --chat by another way than
    /// the chat REST route (e.g. an order status change); run with SCMARKET_WS_CHECK_CHAT and
    /// SCMARKET_WS_CHECK_URL set.
    #[arg(long, value_name = "COMMAND")]
    pub system_message_command: Option<String>,
    /// Time allowed for one connect or one HTTP request (also the command's), up to 10m.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
    /// How long a message is waited for, or its absence watched, up to 10m.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub wait: Duration,
    /// How long room requests are repeated after CONNECT, so a server that registers its
    /// listeners late still hears one (50ms to 10m).
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub join_window: Duration,
    /// Run only this check (repeatable; ids as in the README's list).
    #[arg(long = "only", value_name = "CHECK")]
    pub only: Vec<String>,
    /// Leave this check out (repeatable), e.g. a known defect accepted for now.
    #[arg(long = "skip", value_name = "CHECK")]
    pub skip: Vec<String>,
    /// Print the report as one JSON document (docs/CHECK_SCHEMA.md).
    #[arg(long)]
    pub json: bool,
    /// Show the evidence of every check, not only of failures and warnings.
    #[arg(long)]
    pub evidence: bool,
}

/// Parse a time-series interval: a duration of whole milliseconds from 100ms to 1h.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    use crate::loadtest::metrics::series::{MAX_INTERVAL, MIN_INTERVAL};
    let d = parse_duration(text)?;
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!("`{text}`: the interval must be from 100ms to 1h"));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "`{text}`: the interval must be a whole number of milliseconds"
        ));
    }
    Ok(d)
}

/// Parse `10%` (or `10`) into the ratio 0.1.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n / 100.0),
        _ => Err(format!("`{text}` is not a percentage: write e.g. 10%")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(argv: &[&str]) -> Config {
        let argv = ["scmarket-ws", "serve"].iter().chain(argv);
        match Cli::try_parse_from(argv)
            .expect("valid serve flags")
            .command
        {
            Command::Serve(args) => Config::from(args),
            other => panic!("expected serve, got {other:?}"),
        }
    }

    /// `serve` without flags is `Config::default()`: the flags' defaults and the library's
    /// cannot drift apart. (Flags that read the environment are given, so a developer's
    /// SCMARKET_WS_DATABASE, SESSION_SECRET or JWT_SECRET cannot make this pass or fail.)
    #[test]
    fn serve_defaults_are_the_config_defaults() {
        let config = serve(&["--database", crate::server::config::DEFAULT_DATABASE]);
        let default = Config::default();
        assert_eq!(config.listen, default.listen);
        assert_eq!(config.dev, default.dev);
        assert_eq!(config.store, default.store);
        assert_eq!(config.engine, default.engine);
        assert_eq!(config.allowed_origins, default.allowed_origins);
        assert_eq!(config.limits, default.limits);
        assert_eq!(config.metrics_room_labels, default.metrics_room_labels);
    }

    #[test]
    fn every_serve_flag_reaches_the_config() {
        let config = serve(&[
            "--listen",
            "127.0.0.1:0",
            "--path",
            "/rt",
            "--database",
            "x.db",
            "--seed",
            "s.yaml",
            "--init",
            "--pool-size",
            "3",
            "--pool-warm",
            "2",
            "--pool-wait-timeout",
            "4s",
            "--db-connect-timeout",
            "5s",
            "--db-query-timeout",
            "6s",
            "--session-secret",
            "ss",
            "--jwt-secret",
            "jj",
            "--dev",
            "--ping-interval",
            "1s",
            "--ping-timeout",
            "2s",
            "--connect-timeout",
            "3s",
            "--max-payload",
            "4",
            "--socket-buffer",
            "11",
            "--allowed-origin",
            "https://a",
            "--allowed-origin",
            "https://b",
            "--handshake-rate",
            "5",
            "--handshake-burst",
            "6",
            "--event-rate",
            "7",
            "--event-burst",
            "8",
            "--max-connections-per-user",
            "9",
            "--max-connections-per-ip",
            "12",
            "--header-read-timeout",
            "13s",
            "--metrics-room-labels",
            "10",
        ]);
        assert_eq!(config.listen.port(), 0);
        assert!(config.dev);
        assert_eq!(
            config.store,
            StoreConfig {
                database: "x.db".into(),
                seed: Some("s.yaml".into()),
                pool: PoolConfig {
                    size: 3,
                    warm: Some(2),
                    wait_timeout: Duration::from_secs(4),
                    connect_timeout: Duration::from_secs(5),
                    query_timeout: Duration::from_secs(6),
                },
                init: true,
            }
        );
        assert_eq!(
            config.secrets,
            SecretsConfig {
                session: Some("ss".into()),
                jwt: Some("jj".into())
            }
        );
        assert_eq!(
            config.engine,
            EngineConfig {
                path: "/rt".into(),
                ping_interval: Duration::from_secs(1),
                ping_timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_secs(3),
                max_payload: 4,
                socket_buffer: 11,
            }
        );
        assert_eq!(config.allowed_origins, ["https://a", "https://b"]);
        assert_eq!(
            config.limits,
            LimitsConfig {
                handshake_rate: 5,
                handshake_burst: 6,
                event_rate: 7,
                event_burst: 8,
                max_connections_per_user: 9,
                max_connections_per_ip: 12,
                header_read_timeout: Duration::from_secs(13),
            }
        );
        assert_eq!(config.metrics_room_labels, 10);
    }
}
