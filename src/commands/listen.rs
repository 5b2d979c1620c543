//! `listen URL`: stream events as they arrive, reconnecting (and rejoining rooms) on drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client_setup::{chat_ids, client_failure, options};
use super::output::{Style, cut, emit_line, local_clock, rfc3339};
use crate::cli::{ListenArgs, RoomArgs};
use crate::client::backoff::Backoff;
use crate::client::rooms::{self, Landing, RoomAction, RoomOutcome};
use crate::client::{ClientError, ConnectOptions, ErrorClass, Event, Session, SessionEvent};
use crate::exit::{CommandError, ExitCode};
use crate::protocol::ChatId;

/// Lines waiting for stdout: beyond this many, events are dropped (and counted) rather than
/// queued, so a stdout nobody reads costs bounded memory and never holds up --duration or
/// Ctrl-C.
const OUTPUT_QUEUE: usize = 1024;
/// How long a session must stay up before the reconnect delay starts again from
/// --reconnect-delay: a server that accepts and drops at once is retried ever more slowly.
const STAYED_UP: Duration = Duration::from_secs(10);
/// How long the queued lines may take to reach stdout once listening ends.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Stats {
    shown: u64,
    skipped: u64,
    reconnects: u64,
}

/// stdout on its own thread behind a bounded queue: writing to a pipe nobody reads blocks
/// that thread, never the session.
struct Output {
    lines: Option<std::sync::mpsc::SyncSender<String>>,
    thread: std::thread::JoinHandle<()>,
    /// Set once stdout is gone (`listen | head -3`), and `gone` notified.
    closed: Arc<AtomicBool>,
    gone: Arc<tokio::sync::Notify>,
    written: Arc<AtomicU64>,
    queued: u64,
    dropped: u64,
}

impl Output {
    fn start() -> Output {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(OUTPUT_QUEUE);
        let closed = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let gone = Arc::new(tokio::sync::Notify::new());
        let (c, w, g) = (Arc::clone(&closed), Arc::clone(&written), Arc::clone(&gone));
        let thread = std::thread::spawn(move || {
            for line in rx {
                if !emit_line(&line) {
                    c.store(true, Ordering::Relaxed);
                    g.notify_one();
                    return;
                }
                w.fetch_add(1, Ordering::Relaxed);
            }
        });
        Output {
            lines: Some(tx),
            thread,
            closed,
            gone,
            written,
            queued: 0,
            dropped: 0,
        }
    }

    /// Queue one line; false once stdout is gone.
    fn send(&mut self, line: String) -> bool {
        use std::sync::mpsc::TrySendError;
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let Some(lines) = &self.lines else {
            return false;
        };
        match lines.try_send(line) {
            Ok(()) => self.queued += 1,
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    eprintln!(
                        "warning: stdout is not keeping up; events are dropped and counted until it does (at most {OUTPUT_QUEUE} wait)"
                    );
                }
                self.dropped += 1;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
        true
    }

    /// Let the queued lines reach stdout, for at most `wait`; answers how many did not.
    fn finish(mut self, wait: Duration) -> u64 {
        self.lines = None;
        let until = Instant::now() + wait;
        while !self.thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.closed.load(Ordering::Relaxed) {
            return 0;
        }
        self.queued - self.written.load(Ordering::Relaxed)
    }
}

enum End {
    /// --count reached, --duration over, or Ctrl-C.
    Finished,
    DurationOver,
    Lost(String),
}

pub async fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let rooms = chat_ids(&args.rooms, args.room.normalize_ids)?;
    let mut options = options(&args.client).await?;
    let target = options.display_target();
    let printer = Printer::new(args.client.json);
    let mut output = Output::start();
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut stats = Stats::default();
    let mut backoff = Backoff::new(
        args.reconnect_delay,
        args.reconnect_max_delay,
        args.reconnect_attempts,
    );
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // The handler is installed at the first poll: before "listening on" is printed, so a
    // Ctrl-C that follows the line never meets the default action (killed, no summary).
    let _ = futures_util::FutureExt::now_or_never(&mut ctrl_c);

    let mut session = Session::connect(&options)
        .await
        .map_err(|e| client_failure(e, &format!("connecting to {target}")))?;
    eprintln!(
        "listening on {target} over {} (Ctrl-C to stop)",
        session.info().transport.describe()
    );
    let mut again = false;
    let mut joins = Joins::start(&session, &rooms, &args.room, again);
    let mut up_since = Instant::now();

    loop {
        let end = loop {
            tokio::select! {
                event = session.next_event() => match event {
                    Some(SessionEvent::Event(e)) => {
                        if let Some(id) = e.ack_id {
                            // Nobody else can answer; a server waiting on it would time out.
                            let _ = session.ack(id, Vec::new());
                        }
                        if let Some(chat) = message_chat(&e) {
                            joins.confirmed(chat, again);
                        }
                        if !args.events.is_empty() && !args.events.contains(&e.name) {
                            stats.skipped += 1;
                            continue;
                        }
                        if !output.send(printer.event(&e)) {
                            break End::Finished;
                        }
                        stats.shown += 1;
                        if args.count.is_some_and(|n| stats.shown >= n) {
                            break End::Finished;
                        }
                    }
                    Some(SessionEvent::Ping { .. }) => {}
                    Some(SessionEvent::Disconnected(reason)) => break End::Lost(reason.to_string()),
                    None => break End::Lost("transport close".into()),
                },
                _ = until(deadline) => break End::DurationOver,
                _ = &mut ctrl_c => break End::Finished,
                // Nobody reads any more (`listen | head -1`): nothing left to do.
                _ = output.gone.notified() => break End::Finished,
            }
        };
        joins.stop();
        let reason = match end {
            End::Finished => {
                session.disconnect().await;
                summary(&stats, started, output);
                return Ok(ExitCode::Ok);
            }
            End::DurationOver => {
                session.disconnect().await;
                summary(&stats, started, output);
                return duration_over(&args, &stats);
            }
            End::Lost(reason) => reason,
        };
        if args.no_reconnect {
            summary(&stats, started, output);
            return Err(CommandError::new(
                ExitCode::Failure,
                format!(
                    "connection lost: {reason}\n  try: drop --no-reconnect to reconnect automatically"
                ),
            )
            .into());
        }
        eprintln!("connection lost ({reason}); reconnecting");
        // Only a session that stayed up counts as a success for the backoff: against a server
        // that accepts and drops at once, the delays keep growing.
        if up_since.elapsed() >= STAYED_UP {
            backoff.reset();
        }
        session = match reconnect(&mut options, &args, &mut backoff, deadline, &mut ctrl_c).await {
            Reconnect::Connected(s) => s,
            Reconnect::Stopped => {
                summary(&stats, started, output);
                return Ok(ExitCode::Ok);
            }
            Reconnect::DurationOver => {
                summary(&stats, started, output);
                return duration_over(&args, &stats);
            }
            Reconnect::GaveUp(e) => {
                summary(&stats, started, output);
                return Err(client_failure(
                    e,
                    &format!(
                        "reconnecting to {target} (gave up after {} attempts)",
                        backoff.attempts()
                    ),
                ));
            }
        };
        stats.reconnects += 1;
        eprintln!(
            "reconnected to {target} ({} attempt(s) since a session last stayed up {STAYED_UP:?})",
            backoff.attempts()
        );
        up_since = Instant::now();
        again = true;
        joins = Joins::start(&session, &rooms, &args.room, again);
    }
}

enum Reconnect {
    Connected(Session),
    Stopped,
    DurationOver,
    GaveUp(ClientError),
}

async fn reconnect(
    options: &mut ConnectOptions,
    args: &ListenArgs,
    backoff: &mut Backoff,
    deadline: Option<Instant>,
    ctrl_c: &mut std::pin::Pin<&mut impl std::future::Future<Output = std::io::Result<()>>>,
) -> Reconnect {
    let mut last: Option<ClientError> = None;
    loop {
        let Some(delay) = backoff.next_delay() else {
            return Reconnect::GaveUp(last.unwrap_or(ClientError::Protocol(
                "no reconnect attempts allowed".into(),
            )));
        };
        tracing::debug!(?delay, attempt = backoff.attempts(), "waiting to reconnect");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = until(deadline) => return Reconnect::DurationOver,
            _ = ctrl_c.as_mut() => return Reconnect::Stopped,
        }
        tokio::select! {
            result = Session::connect(options) => match result {
                Ok(session) => return Reconnect::Connected(session),
                Err(e) => {
                    eprintln!("reconnect attempt {} failed: {e}", backoff.attempts());
                    // Dev-login cookies die with a restarted `serve --dev` (its session rows)
                    // and after 15 minutes (the JWT): log in again before the next attempt.
                    if e.class() == ErrorClass::Refused
                        && let Some(user) = &args.client.login
                    {
                        match super::client_setup::options(&args.client).await {
                            Ok(fresh) => {
                                eprintln!("logged in again as {user}");
                                *options = fresh;
                            }
                            Err(login) => eprintln!("logging in again failed: {login:#}"),
                        }
                    }
                    last = Some(e);
                }
            },
            _ = until(deadline) => return Reconnect::DurationOver,
            _ = ctrl_c.as_mut() => return Reconnect::Stopped,
        }
    }
}

/// The chat a `serverMessage` belongs to.
fn message_chat(e: &Event) -> Option<&str> {
    if e.name != crate::protocol::SERVER_MESSAGE {
        return None;
    }
    e.args.first()?.get("chat_id")?.as_str()
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn duration_over(args: &ListenArgs, stats: &Stats) -> anyhow::Result<ExitCode> {
    match args.count {
        Some(n) if stats.shown < n => {
            let try_next = if args.rooms.is_empty() {
                "check that this user takes part in the chats (or pass --room), or raise --duration"
            } else if args.events.is_empty() {
                "check that messages are posted to the --room chats while listening, that this user may view them, and that the ids are lower-case; or raise --duration"
            } else {
                "check --event (other events were counted as skipped), that messages are posted to the --room chats while listening, or raise --duration"
            };
            Err(CommandError::new(
                ExitCode::TimedOut,
                format!(
                    "only {} of the {n} expected events arrived within {:?}\n  try: {try_next}",
                    stats.shown,
                    args.duration.unwrap_or_default()
                ),
            )
            .into())
        }
        _ => Ok(ExitCode::Ok),
    }
}

fn summary(stats: &Stats, started: Instant, output: Output) {
    let dropped = output.dropped;
    let unwritten = output.finish(FLUSH_WAIT);
    let mut skipped = if stats.skipped > 0 {
        format!(", {} skipped by --event", stats.skipped)
    } else {
        String::new()
    };
    if dropped > 0 {
        skipped.push_str(&format!(", {dropped} dropped (stdout did not keep up)"));
    }
    if unwritten > 0 {
        skipped.push_str(&format!(", {unwritten} never written (stdout blocked)"));
    }
    eprintln!(
        "listen: {} events{skipped}, {} reconnects, {:.1} s",
        stats.shown,
        stats.reconnects,
        started.elapsed().as_secs_f64()
    );
}

/// The joins of one session, landing in the background while events are read: each is sent
/// again on the resend schedule until acknowledged (or a message from its room shows it is in),
/// since a server that registers its listeners late drops the first ones.
struct Joins {
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
}

impl Joins {
    fn start(session: &Session, rooms: &[String], args: &RoomArgs, again: bool) -> Joins {
        let resend = args.resend();
        let tasks = rooms
            .iter()
            .map(|room| {
                let handle = session.handle().clone();
                let (room_name, resend, ack_wait) = (room.clone(), resend.clone(), args.ack_wait);
                let task = tokio::spawn(async move {
                    let landing =
                        rooms::land(&handle, RoomAction::Join, &room_name, &resend, ack_wait).await;
                    report_join(&room_name, landing, again);
                });
                (room.clone(), task)
            })
            .collect();
        Joins { tasks }
    }

    /// A message from `chat_id` arrived: a join of that room still being sent is in.
    fn confirmed(&mut self, chat_id: &str, again: bool) {
        self.tasks.retain(|(room, task)| {
            if task.is_finished() {
                return false;
            }
            if !room.eq_ignore_ascii_case(chat_id) {
                return true;
            }
            task.abort();
            let verb = if again { "rejoined" } else { "joined" };
            eprintln!("{verb} room {room} (a message from it arrived; the server gives no other confirmation)");
            false
        });
    }

    fn stop(&mut self) {
        for (_, task) in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Joins {
    fn drop(&mut self) {
        self.stop();
    }
}

fn report_join(room: &str, landing: Result<Landing, ClientError>, again: bool) {
    let verb = if again { "rejoined" } else { "joined" };
    match landing {
        Ok(Landing {
            outcome: RoomOutcome::Done,
            sends,
        }) => match sends {
            1 => eprintln!("{verb} room {room}"),
            n => eprintln!("{verb} room {room} (answered after {n} sends)"),
        },
        Ok(Landing {
            outcome: RoomOutcome::Refused(reason),
            ..
        }) => eprintln!("warning: the server refused room {room}: {reason}"),
        Ok(Landing {
            outcome: RoomOutcome::Unconfirmed,
            sends,
        }) => eprintln!(
            "{} room {room} sent {sends} time(s); the server gives no confirmation",
            if again { "rejoin of" } else { "join of" }
        ),
        Err(e) => eprintln!("warning: could not send the join of room {room}: {e}"),
    }
}

struct Printer {
    json: bool,
    style: Style,
    width: usize,
}

impl Printer {
    fn new(json: bool) -> Self {
        let style = Style::for_stdout();
        let width = if style.is_terminal() {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(100)
        } else {
            240
        };
        Printer { json, style, width }
    }

    /// One event as its line.
    fn event(&self, e: &Event) -> String {
        if self.json {
            let line = json!({
                "received_at": rfc3339(e.received_at),
                "event": e.name,
                "args": e.args,
            });
            return line.to_string();
        }
        let clock = local_clock(e.received_at);
        let first = e.args.first().and_then(Value::as_object);
        let field = |name: &str| first.and_then(|m| m.get(name));
        match (field("chat_id"), field("content")) {
            (Some(Value::String(chat)), Some(Value::String(content))) => {
                let author = match field("author") {
                    Some(Value::String(a)) => a.clone(),
                    _ => "(system)".to_string(),
                };
                let short_chat = ChatId::parse(chat)
                    .map(|c| c.to_string()[..8].to_string())
                    .unwrap_or_else(|_| cut(chat, 8));
                let used = clock.len() + e.name.len() + short_chat.len() + author.len() + 4;
                let room = self.width.saturating_sub(used).max(20);
                format!(
                    "{} {} {} {} {}",
                    self.style.paint("2", &clock),
                    self.style.paint("36", &e.name),
                    self.style.paint("35", &short_chat),
                    self.style.paint("32", &author),
                    cut(content, room)
                )
            }
            _ => {
                let args = Value::from(e.args.clone()).to_string();
                let used = clock.len() + e.name.len() + 2;
                let room = self.width.saturating_sub(used).max(20);
                format!(
                    "{} {} {}",
                    self.style.paint("2", &clock),
                    self.style.paint("33", &e.name),
                    cut(&args, room)
                )
            }
        }
    }
}
