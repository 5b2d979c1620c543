//! The delivery family: every message stored in a chat reaches its room, whoever wrote it.
//! Production emits only what its chat REST route stores; automatic order and offer messages
//! are inserted and never emitted (`unemitted-messages`). No public route makes one, so the
//! operator names a command that does (e.g. changing an order's status on staging); the check
//! runs it and compares the chat's history before and after with what user A's session received.

use std::collections::HashSet;
use std::process::Stdio;

use serde_json::Value;

use super::context::Context;
use super::joins::room_request;
use super::report::{Evidence, excerpt};
use super::{Finding, NEEDS_A, NEEDS_CHAT};
use crate::client::{Session, SessionEvent, Transport};
use crate::protocol::{CLIENT_JOIN_ROOM, SERVER_MESSAGE};

/// Variables the command is run with.
pub const CHAT_VARIABLE: &str = "SCMARKET_WS_CHECK_CHAT";
pub const URL_VARIABLE: &str = "SCMARKET_WS_CHECK_URL";

/// `delivery.system-message`.
pub async fn system_message(ctx: &Context) -> Finding {
    let (Some(a), Some(chat_id)) = (&ctx.a, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_CHAT, "--system-message-command"]);
    };
    let Some(command) = ctx.config.system_message_command.as_deref() else {
        return Finding::skipped(&["--system-message-command"]);
    };
    let chat = chat_id.to_string();
    let mut evidence = Vec::new();
    let before = match ctx.api.get_chat(&a.cookie_header(), chat_id).await {
        Ok(detail) => detail
            .messages
            .iter()
            .map(|m| m.message_id)
            .collect::<HashSet<_>>(),
        Err(e) => return Finding::warning(format!("cannot read the chat as user A: {e}")),
    };
    let mut session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("user A could not connect: {e}")),
    };
    match room_request(ctx, &session, a, CLIENT_JOIN_ROOM, &chat).await {
        Ok(entered) => evidence.push(entered.evidence),
        Err(e) => return Finding::fail(format!("the session failed: {e}")),
    }

    // The command itself is not shown: it may carry the operator's credentials.
    let step = Evidence::step("run --system-message-command").request(format!(
        "sh -c <--system-message-command> with {CHAT_VARIABLE}={chat}"
    ));
    let output = match tokio::time::timeout(
        ctx.config.timeout,
        run_command(command, &chat, &ctx.api_base()),
    )
    .await
    {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            session.disconnect().await;
            return Finding::warning(format!("cannot run the command: {e}")).with(vec![step]);
        }
        Err(_) => {
            session.disconnect().await;
            return Finding::warning(format!(
                "the command did not finish within {} ms",
                ctx.config.timeout.as_millis()
            ))
            .with(vec![step]);
        }
    };
    let mut step = step.note(output.status.to_string());
    step.body = Some(excerpt(&output.text));
    evidence.push(step);
    if !output.status.success() {
        session.disconnect().await;
        return Finding::warning("the command failed, so no message was made").with(evidence);
    }

    let received = collect_messages(&mut session, ctx.config.wait).await;
    session.disconnect().await;
    let after = match ctx.api.get_chat(&a.cookie_header(), chat_id).await {
        Ok(detail) => detail.messages,
        Err(e) => {
            return Finding::warning(format!("cannot read the chat as user A: {e}")).with(evidence);
        }
    };
    let new: Vec<_> = after
        .iter()
        .filter(|m| !before.contains(&m.message_id))
        .collect();
    let mut missing = Vec::new();
    for message in &new {
        let id = message.message_id.to_string();
        let arrived = received
            .iter()
            .any(|r| r.get("message_id").and_then(Value::as_str) == Some(id.as_str()));
        evidence.push(
            Evidence::step("a message the command stored")
                .packet(serde_json::to_string(message).unwrap_or_default())
                .note(if arrived {
                    "reached user A's session"
                } else {
                    "never reached user A's session"
                }),
        );
        if !arrived {
            missing.push(id);
        }
    }
    let finding = if new.is_empty() {
        Finding::warning(
            "the command stored no new message in the chat, so there was nothing to deliver",
        )
    } else if missing.is_empty() {
        Finding::pass(format!(
            "{} message(s) stored by the command reached the room",
            new.len()
        ))
    } else {
        Finding::fail(format!(
            "{} of {} message(s) stored by the command never reached the room (unemitted-messages)",
            missing.len(),
            new.len()
        ))
    };
    finding.with(evidence)
}

/// What the command did: its exit status and the start of what it printed.
struct CommandOutput {
    status: std::process::ExitStatus,
    text: String,
}

/// Output kept from the command; the rest is read and dropped, so a chatty command neither
/// fills memory nor blocks on a full pipe.
const OUTPUT_CAP: usize = 16 * 1024;

async fn run_command(command: &str, chat: &str, url: &str) -> std::io::Result<CommandOutput> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env(CHAT_VARIABLE, chat)
        .env(URL_VARIABLE, url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (out, err, status) = tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
    Ok(CommandOutput {
        status: status?,
        text: format!("{out}{err}"),
    })
}

async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Every `serverMessage` argument that arrives within `within`.
async fn collect_messages(session: &mut Session, within: std::time::Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.next_event()).await {
        match event {
            SessionEvent::Event(e) if e.name == SERVER_MESSAGE => {
                out.extend(e.args.first().cloned());
            }
            SessionEvent::Disconnected(_) => break,
            _ => {}
        }
    }
    out
}
