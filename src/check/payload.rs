//! The payload family: what a client receives. With `--post`, user A posts to the chat and the
//! `serverMessage` that arrives is held against the schema generated from `src/protocol.rs`
//! (the one `spec websocket` publishes), and against what was posted.

use serde_json::Value;

use super::context::{Context, Watch};
use super::joins::{room_request, watch_evidence};
use super::report::Evidence;
use super::schema;
use super::{Finding, NEEDS_A, NEEDS_CHAT, NEEDS_POST};
use crate::apidoc::websocket;
use crate::client::Transport;
use crate::protocol::CLIENT_JOIN_ROOM;

const CHECK: &str = "payload.server-message";

/// `payload.server-message`.
pub async fn server_message(ctx: &Context) -> Finding {
    let (Some(a), Some(chat)) = (&ctx.a, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_CHAT, NEEDS_POST]);
    };
    if !ctx.config.post {
        return Finding::skipped(&[NEEDS_POST]);
    }
    let chat = chat.to_string();
    let mut session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("user A could not connect: {e}")),
    };
    let mut evidence = Vec::new();
    // A is in the room from the start; the join covers a server that joins it late.
    match room_request(ctx, &session, a, CLIENT_JOIN_ROOM, &chat).await {
        Ok(entered) => evidence.push(entered.evidence),
        Err(e) => return Finding::fail(format!("the session failed: {e}")),
    }
    let (mark, posted) = ctx.post(a, &chat, CHECK).await;
    evidence.push(ctx.post_evidence("post as user A", a, &chat, &posted));
    if let Err(e) = posted {
        session.disconnect().await;
        return Finding::warning(format!(
            "user A's post was not accepted ({e}): is --chat a chat user A takes part in?"
        ))
        .with(evidence);
    }
    let watch = Context::watch(&mut session, &mark, ctx.config.wait).await;
    session.disconnect().await;
    evidence.push(watch_evidence("user A's session after the post", &watch));
    let Watch::Received { message, .. } = watch else {
        return Finding::fail(format!(
            "no serverMessage within {} ms of an accepted post to the chat",
            ctx.config.wait.as_millis()
        ))
        .with(evidence);
    };
    let expected_content = format!("scmarket-ws check {CHECK} {mark}");
    let (problems, extra) = judge(&message, &chat, &expected_content, a.username.as_deref());
    let finding = if !problems.is_empty() {
        Finding::fail(format!(
            "the serverMessage is not what clients are built for: {}",
            problems.join("; ")
        ))
    } else if !extra.is_empty() {
        Finding::warning(format!(
            "the serverMessage validates, with keys the schema does not name: {}",
            extra.join(", ")
        ))
    } else {
        Finding::pass(
            "the serverMessage validates against the generated schema: keys, types, ISO-8601 timestamp with milliseconds, author",
        )
    };
    evidence.push(Evidence::step("validation").note(if problems.is_empty() {
        "no error".to_string()
    } else {
        problems.join("\n")
    }));
    finding.with(evidence)
}

/// What is wrong with a received message (schema errors and mismatches with what was sent),
/// and keys the schema does not name.
pub fn judge(
    message: &Value,
    chat: &str,
    content: &str,
    author: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let schema = &websocket::schemas()[websocket::MESSAGE_SCHEMA];
    let mut problems = schema::validate(schema, message);
    if let Some(timestamp) = message.get("timestamp").and_then(Value::as_str)
        && !has_milliseconds(timestamp)
    {
        problems.push(format!(
            "$.timestamp: {timestamp:?} is not UTC with exactly three fractional digits (e.g. 2026-01-02T03:04:05.678Z)"
        ));
    }
    if message.get("chat_id").and_then(Value::as_str) != Some(chat) {
        problems.push(format!("$.chat_id: is not {chat:?}"));
    }
    if message.get("content").and_then(Value::as_str) != Some(content) {
        problems.push("$.content: is not the text that was posted".to_string());
    }
    if let Some(author) = author
        && message.get("author").and_then(Value::as_str) != Some(author)
    {
        problems.push(format!(
            "$.author: is {}, expected the poster's username {author:?}",
            message.get("author").unwrap_or(&Value::Null)
        ));
    }
    let known = schema.get("properties").and_then(Value::as_object);
    let extra = message
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !known.is_some_and(|p| p.contains_key(*k)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (problems, extra)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as `Date.prototype.toJSON` writes it.
fn has_milliseconds(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes[19] == b'.'
        && bytes[23] == b'Z'
        && bytes[20..23].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judging_a_message() {
        let chat = "5c0000c4-0000-4000-8000-000000000003";
        let good = json!({
            "message_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "content": "hi",
            "author": "alice",
            "chat_id": chat,
            "timestamp": "2026-01-02T03:04:05.678Z"
        });
        assert_eq!(judge(&good, chat, "hi", Some("alice")), (vec![], vec![]));
        let mut off = good.clone();
        off["timestamp"] = "2026-01-02T03:04:05Z".into();
        off["author"] = "bob".into();
        off["type"] = "message".into();
        let (problems, extra) = judge(&off, chat, "hi", Some("alice"));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(extra, vec!["type".to_string()]);
        assert!(has_milliseconds("2026-01-02T03:04:05.678Z"));
        assert!(!has_milliseconds("2026-01-02T03:04:05.678+00:00"));
    }
}
