//! Before the clock starts: the target (starting `serve --dev` in-process for `embedded`), the
//! cookies of the virtual users, and the rooms. Provisioning happens up front so that logins and
//! chat creation never compete with the sessions being measured.
//!
//! Dev logins are made for a pool of users no larger than the sessions a generator can hold at
//! once ([`user_pool`]), not for every arrival: an open phase of an hour may start millions of
//! sessions, and rendering, storing and logging in a user for each would take the memory and
//! time before the first one connects. Virtual user N uses the pool's user N mod its size, as
//! it does a sessions file's line N mod its length.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use super::scenario::{Phase, Rooms, Scenario, Target, Users, limits};
use super::shard::Shard;
use super::template::Vars;
use crate::client::{ApiClient, ClientError, ConnectOptions, ErrorClass};
use crate::exit::{CommandError, ExitCode};
use crate::protocol::DevCreateChatRequest;
use crate::server::RunningServer;

/// Requests in flight while provisioning users and rooms.
const PROVISIONING_CONCURRENCY: usize = 32;

/// One node of the target: where its sessions connect and where its users post.
pub struct TargetNode {
    /// URL and path; each session adds its own cookie (and local address) to a clone.
    pub options: ConnectOptions,
    /// The node's REST API, for the virtual users' posts: one per `--local-ips` address (one
    /// from the system's choice without them).
    pub apis: Vec<ApiClient>,
    /// `--local-ips`, in order; empty: the system's choice.
    pub local_ips: Arc<[IpAddr]>,
}

impl TargetNode {
    /// A node with an API client per local address.
    pub fn new(options: ConnectOptions, local_ips: &Arc<[IpAddr]>) -> Self {
        let apis = if local_ips.is_empty() {
            vec![ApiClient::for_target(&options)]
        } else {
            local_ips
                .iter()
                .map(|ip| {
                    let mut from = options.clone();
                    from.local_address = Some(*ip);
                    ApiClient::for_target(&from)
                })
                .collect()
        };
        TargetNode {
            options,
            apis,
            local_ips: Arc::clone(local_ips),
        }
    }

    fn slot(&self, vu: u64, of: usize) -> usize {
        (vu % of.max(1) as u64) as usize
    }

    /// Where virtual user `vu`'s connections leave from (`None`: the system's choice).
    pub fn local_address(&self, vu: u64) -> Option<IpAddr> {
        (!self.local_ips.is_empty()).then(|| self.local_ips[self.slot(vu, self.local_ips.len())])
    }

    /// The API client virtual user `vu` posts with: from its local address.
    pub fn api(&self, vu: u64) -> &ApiClient {
        &self.apis[self.slot(vu, self.apis.len())]
    }
}

/// What the run needs, ready before the first phase.
pub struct Prepared {
    /// The target's nodes (one unless `target` lists several): where each virtual user
    /// starts is `VirtualUser::new`'s rule (a room's members on successive nodes).
    pub nodes: Arc<[TargetNode]>,
    /// `Cookie` header text per virtual user of this shard (`cookies[local % len]`, local
    /// numbers as in `shard.rs`).
    pub cookies: Arc<[String]>,
    /// Room (chat id) per virtual user of this shard (`rooms[local % len]`); empty without
    /// `setup.rooms`.
    pub rooms: Arc<[String]>,
    /// The server joins each session to its user's chats on connect: with dev-created rooms,
    /// the virtual user's own room.
    pub auto_joined: bool,
    /// `serve --dev` started in this process for `target: embedded`.
    pub embedded: Option<Embedded>,
    /// Virtual users the phases will start in this shard.
    pub total_vus: u64,
}

fn setup_error(message: impl Into<String>) -> anyhow::Error {
    CommandError::new(ExitCode::Failure, message).into()
}

/// Virtual users the phases start: one per arrival in open phases, `vus` in closed ones (a
/// closed-model user that finishes starts again under the same number).
pub fn count_vus(phases: &[Phase]) -> u64 {
    phases
        .iter()
        .map(|p| match p {
            Phase::Open { .. } => p.arrivals().map_or(0, |a| a.ceil() as u64),
            Phase::Closed { vus, .. } => u64::from(*vus),
        })
        .sum()
}

/// The in-process server of `target: embedded`, and what it takes to start it again.
pub struct Embedded {
    /// `None` only while a restart has it down.
    server: Option<RunningServer>,
    addr: std::net::SocketAddr,
    path: String,
    /// A throwaway database file when the server must survive a restart; else in memory.
    database: Option<std::path::PathBuf>,
}

impl Embedded {
    pub async fn start(path: &str, survive_restart: bool) -> anyhow::Result<Embedded> {
        let database = survive_restart.then(|| {
            std::env::temp_dir().join(format!(
                "scmarket-ws-load-test-{}-{:08x}.db",
                std::process::id(),
                fastrand::u32(..)
            ))
        });
        let loopback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let server = start_embedded(path, database.as_deref(), loopback).await?;
        Ok(Embedded {
            addr: server.local_addr(),
            server: Some(server),
            path: path.to_string(),
            database,
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the server, wait, and start it again on the same port with the same store, so
    /// cookies and rooms stay valid and clients can come back.
    pub async fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        tokio::time::sleep(down_for).await;
        self.server = Some(start_embedded(&self.path, self.database.as_deref(), self.addr).await?);
        Ok(())
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(db) = &self.database {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
}

/// Start a dev server on a loopback port, with the limits meant for production traffic turned
/// off: a load test comes from one IP and is meant to find the server's limits, not the rate
/// limiter's.
async fn start_embedded(
    path: &str,
    database: Option<&Path>,
    listen: std::net::SocketAddr,
) -> anyhow::Result<RunningServer> {
    use crate::server::{self, Config, LimitsConfig};
    let mut config = Config::ephemeral_dev();
    config.listen = listen;
    config.engine.path = path.to_string();
    config.limits = LimitsConfig::off();
    if let Some(file) = database {
        config.store.database = file.display().to_string();
    }
    server::start(config).await
}

pub async fn prepare(
    scenario: &Scenario,
    shard: Shard,
    local_ips: &Arc<[IpAddr]>,
) -> anyhow::Result<Prepared> {
    check_shard(scenario, shard)?;
    let (embedded, urls) = match &scenario.target {
        Target::Embedded => {
            let embedded = Embedded::start(
                &scenario.engine_path,
                scenario.setup.restart_server.is_some(),
            )
            .await?;
            let url = embedded.http_url();
            (Some(embedded), vec![url])
        }
        Target::Urls(urls) => {
            for url in urls {
                check_loopback(url)?;
            }
            (None, urls.iter().map(|u| u.to_string()).collect())
        }
    };
    let nodes = urls
        .iter()
        .map(|url| {
            let mut options = ConnectOptions::new(url, Some(&scenario.engine_path))
                .map_err(|e| CommandError::usage(e.to_string()))?;
            options.timeout = Duration::from_secs(10);
            Ok(TargetNode::new(options, local_ips))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Users and rooms are provisioned through the first node: the nodes share one store.
    let (api, timeout) = (nodes[0].api(0), nodes[0].options.timeout);
    let total_vus = shard.owned_of(count_vus(&scenario.phases));
    let own_rooms: Vec<usize> = match &scenario.setup.rooms {
        Some(Rooms::Count(n)) => shard
            .deal(&(0..*n as usize).collect::<Vec<_>>())
            .into_iter()
            .map(|(r, _)| r)
            .collect(),
        _ => Vec::new(),
    };
    let pool = user_pool(
        total_vus,
        limits::max_sessions(&scenario.target),
        own_rooms.len().max(1) as u64,
    );

    let usernames: Option<Vec<String>> = match &scenario.setup.users {
        Users::Template(t) => Some(
            (0..pool)
                .map(|local| {
                    t.render(&Vars {
                        vu: shard.global(local),
                        ..Vars::default()
                    })
                })
                .collect(),
        ),
        Users::SessionsFile(_) | Users::None => None,
    };

    let (rooms, auto_joined): (Vec<String>, bool) = match (&scenario.setup.rooms, &usernames) {
        (None, _) => (Vec::new(), false),
        (Some(Rooms::Ids(ids)), _) => (
            shard
                .deal(ids)
                .into_iter()
                .map(|(_, id)| id.room())
                .collect(),
            false,
        ),
        (Some(Rooms::Count(_)), Some(names)) => {
            (create_dev_rooms(api, &own_rooms, names).await?, true)
        }
        (Some(Rooms::Count(_)), None) => {
            return Err(CommandError::usage(
                "setup.rooms as a count creates chats through the dev helpers, which need \
                 setup.users (dev login); with sessions_file or users: none, list existing chat \
                 ids instead",
            )
            .into());
        }
    };

    let cookies: Vec<String> = match (&scenario.setup.users, usernames) {
        (Users::SessionsFile(file), _) => {
            let lines = read_sessions_file(file)?;
            if lines.len() < shard.count() as usize {
                return Err(CommandError::usage(format!(
                    "sessions_file {} has {} session(s), fewer than the {} shards that deal \
                     them out: give at least one per shard",
                    file.display(),
                    lines.len(),
                    shard.count()
                ))
                .into());
            }
            shard.deal(&lines).into_iter().map(|(_, l)| l).collect()
        }
        (Users::Template(_), Some(names)) => {
            dev_logins(&api.clone().with_timeout(timeout), &names).await?
        }
        (Users::None, _) => vec![String::new()],
        (Users::Template(_), None) => unreachable!("templates always render usernames"),
    };
    Ok(Prepared {
        nodes: nodes.into(),
        cookies: cookies.into(),
        rooms: rooms.into(),
        auto_joined,
        embedded,
        total_vus,
    })
}

/// A shard owns whole rooms (see `shard.rs`): it needs at least one.
fn check_shard(scenario: &Scenario, shard: Shard) -> anyhow::Result<()> {
    let rooms = match &scenario.setup.rooms {
        Some(Rooms::Count(n)) => u64::from(*n),
        Some(Rooms::Ids(ids)) => ids.len() as u64,
        None => return Ok(()),
    };
    if rooms < u64::from(shard.count()) {
        return Err(CommandError::usage(format!(
            "setup.rooms gives {rooms} room(s) to {} shards: each shard owns whole rooms (so \
             that every message is counted where it is received), so give at least one room \
             per shard",
            shard.count()
        ))
        .into());
    }
    Ok(())
}

/// Load tests only ever target this machine: a URL whose host is not loopback is refused.
fn check_loopback(url: &reqwest::Url) -> anyhow::Result<()> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(CommandError::usage(format!(
            "target {url} is not a loopback address: load tests may only target this machine \
             (127.0.0.0/8, ::1, localhost)"
        ))
        .into())
    }
}

/// A provisioning call that failed, with what to do when nothing answers at the target.
fn provisioning_error(doing: &str, error: &ClientError) -> anyhow::Error {
    let hint = if error.class() == ErrorClass::Unreachable {
        " (nothing answers there: start `scmarket-ws serve --dev`, or use target: embedded)"
    } else {
        ""
    };
    setup_error(format!("{doing}: {error}{hint}"))
}

/// Create the dev rooms of this shard (`own`: their numbers in the whole run); the shard's
/// user `local` takes part in its room `local mod own.len()`.
async fn create_dev_rooms(
    api: &ApiClient,
    own: &[usize],
    usernames: &[String],
) -> anyhow::Result<Vec<String>> {
    let count = own.len().max(1);
    let mut rooms = Vec::with_capacity(count);
    for (local_room, room) in own.iter().enumerate() {
        let participants: Vec<String> = usernames
            .iter()
            .enumerate()
            .filter(|(local, _)| local % count == local_room)
            .map(|(_, name)| name.clone())
            .collect();
        let request = DevCreateChatRequest {
            participants,
            name: Some(format!("load-test room {room}")),
        };
        match api.dev_create_chat(&request).await {
            Ok(chat_id) => rooms.push(chat_id.room()),
            Err(ClientError::ApiStatus { status: 404, .. }) => {
                return Err(setup_error(
                    "POST /api/dev/chats answered 404: setup.rooms as a count needs a server \
                     started with serve --dev (or list existing chat ids in setup.rooms)",
                ));
            }
            Err(e) => {
                return Err(provisioning_error(
                    &format!("creating load-test room {room}"),
                    &e,
                ));
            }
        }
    }
    Ok(rooms)
}

/// Users to log in for `total_vus` virtual users: all of them, or at most `max_sessions` (the
/// most that can be online at once), rounded down to a multiple of `rooms` so that user
/// `vu mod pool` is a participant of the room of `vu` (`vu mod rooms`), as without the pool.
pub fn user_pool(total_vus: u64, max_sessions: u64, rooms: u64) -> u64 {
    if total_vus <= max_sessions {
        return total_vus;
    }
    let rooms = rooms.max(1);
    (max_sessions - max_sessions % rooms).max(rooms)
}

async fn dev_logins(api: &ApiClient, usernames: &[String]) -> anyhow::Result<Vec<String>> {
    // The first failure ends provisioning: against a server that is down, thousands of logins
    // would each fail the same way.
    futures_util::stream::iter(usernames)
        .map(|name| async move {
            api.dev_login(name)
                .await
                .map(|login| login.session_cookie)
                .map_err(|e| match e {
                    ClientError::ApiStatus { status: 404, .. } => setup_error(format!(
                        "dev login as {name}: {e}; the target has no dev helpers (only \
                         `serve --dev` does), so give the users another way: \
                         `setup.sessions_file` (one Cookie header or JWT per line, e.g. from \
                         `scmarket-ws session-cookie`), or `setup.users: none` for sessions \
                         without credentials"
                    )),
                    e => provisioning_error(&format!("dev login as {name}"), &e),
                })
        })
        .buffered(PROVISIONING_CONCURRENCY)
        .try_collect()
        .await
}

/// One session per line: a `Cookie` header (`NAME=VALUE; ...`) or a bare JWT, which is sent as
/// the `scmarket.access` cookie. Blank lines and `#` comments are skipped. `file` is already
/// resolved against the scenario's folder by `scenario::load`.
fn read_sessions_file(file: &Path) -> anyhow::Result<Vec<String>> {
    let path = file.to_path_buf();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CommandError::usage(format!("cannot read sessions_file {}: {e}", path.display()))
    })?;
    let cookies: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            if l.contains('=') {
                l.to_string()
            } else {
                format!("{}={l}", crate::protocol::ACCESS_COOKIE)
            }
        })
        .collect();
    if cookies.is_empty() {
        return Err(CommandError::usage(format!(
            "sessions_file {} has no sessions: write one cookie (NAME=VALUE) or JWT per line",
            path.display()
        ))
        .into());
    }
    Ok(cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_users_per_phase() {
        let phases = [
            Phase::Open {
                duration: Duration::from_secs(10),
                arrival_rate: 50.0,
                ramp_to: Some(200.0),
            },
            Phase::Closed {
                duration: Duration::from_secs(30),
                vus: 500,
            },
        ];
        assert_eq!(count_vus(&phases), 1250 + 500);
    }

    #[test]
    fn the_user_pool_stops_at_the_sessions_a_generator_holds() {
        assert_eq!(user_pool(500, 9_900, 10), 500);
        assert_eq!(user_pool(9_900, 9_900, 10), 9_900);
        // Past the ceiling: a multiple of the room count, so user vu mod pool is in vu's room.
        assert_eq!(user_pool(5_000_000, 9_900, 7), 9_898);
        assert_eq!(user_pool(5_000_000, 9_900, 1), 9_900);
        let pool = user_pool(5_000_000, 9_900, 7);
        for vu in [0u64, 9_897, 9_898, 123_456, 4_999_999] {
            assert_eq!((vu % pool) % 7, vu % 7);
        }
    }

    #[test]
    fn only_loopback_targets() {
        for ok in [
            "http://127.0.0.1:7000",
            "http://127.9.9.9",
            "http://[::1]:7000",
            "http://localhost:1",
        ] {
            assert!(
                check_loopback(&reqwest::Url::parse(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://10.0.0.1",
            "https://api.sc-market.space",
            "http://192.168.1.1:7000",
        ] {
            assert!(
                check_loopback(&reqwest::Url::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sessions_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.txt");
        std::fs::write(
            &file,
            "# comment\nscmarket.sid=s%3Aabc.def\n\neyJhbGciOi.x.y\n",
        )
        .unwrap();
        let cookies = read_sessions_file(&file).unwrap();
        assert_eq!(
            cookies,
            ["scmarket.sid=s%3Aabc.def", "scmarket.access=eyJhbGciOi.x.y"]
        );
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(read_sessions_file(&file).is_err());
    }
}
