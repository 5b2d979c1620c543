//! The typed REST client (`client::ApiClient`) against the reference server in-process over
//! real loopback sockets: every route it speaks, what its answers carry, and how a refusal,
//! a missing dev route and an unreachable server read.

mod common;

use std::time::Duration;

use scmarket_ws::client::api::ApiCall;
use scmarket_ws::client::{
    ApiClient, ClientError, ConnectOptions, DisconnectReason, ErrorClass, Session, SessionEvent,
};
use scmarket_ws::protocol::{
    ChatId, CreateChatRequest, DevCreateChatRequest, PostMessageRequest, SERVER_MESSAGE,
};

use common::{DIRECT_CHAT, ORDER_CHAT};

const WAIT: Duration = Duration::from_secs(10);

fn api(url: &str) -> ApiClient {
    ApiClient::for_target(&ConnectOptions::new(url, None).unwrap()).with_timeout(WAIT)
}

fn chat(id: &str) -> ChatId {
    ChatId::parse(id).unwrap()
}

/// A session as the owner of `cookie`.
async fn session(url: &str, cookie: &str) -> Session {
    let mut options = ConnectOptions::new(url, None).unwrap();
    options.add_cookies(cookie).unwrap();
    Session::connect(&options).await.expect("the session opens")
}

/// The next `serverMessage`'s content, skipping anything else.
async fn next_message(session: &mut Session) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match session.next_event().await {
                Some(SessionEvent::Event(e)) if e.name == SERVER_MESSAGE => {
                    return e.args[0]["content"].as_str().unwrap().to_string();
                }
                Some(SessionEvent::Disconnected(reason)) => panic!("session ended: {reason}"),
                None => panic!("session ended"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("a serverMessage arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_in_its_protocol_type() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let api = api(&url);

    let alice = api.dev_login("alice").await.unwrap();
    assert_eq!(alice.username, "alice");
    assert!(alice.session_cookie.starts_with("scmarket.sid="));
    assert!(alice.access_cookie.starts_with("scmarket.access="));
    let alice = alice.session_cookie;
    let bob = api.dev_login("bob").await.unwrap().access_cookie;

    let chats = api.list_chats(&alice).await.unwrap();
    let ids: Vec<ChatId> = chats.iter().map(|c| c.chat_id).collect();
    assert!(ids.contains(&chat(ORDER_CHAT)), "{ids:?}");
    assert!(ids.contains(&chat(DIRECT_CHAT)), "{ids:?}");

    // bob's session is in the direct chat's room from the start: the post reaches it.
    let mut bob_session = session(&url, &bob).await;
    let post = PostMessageRequest {
        content: "through the api client".into(),
    };
    api.post_message(&alice, DIRECT_CHAT, &post).await.unwrap();
    assert_eq!(next_message(&mut bob_session).await, post.content);
    let detail = api.get_chat(&alice, chat(DIRECT_CHAT)).await.unwrap();
    assert_eq!(detail.chat.chat_id, chat(DIRECT_CHAT));
    assert_eq!(
        detail.messages.last().map(|m| m.content.as_str()),
        Some("through the api client")
    );

    // A direct chat with a user made by the dev login, then a dev chat among three.
    let erin = api.dev_login("erin").await.unwrap().session_cookie;
    let direct = api
        .create_chat(
            &alice,
            &CreateChatRequest {
                users: vec!["erin".into()],
            },
        )
        .await
        .unwrap();
    let again = api
        .create_chat(
            &alice,
            &CreateChatRequest {
                users: vec!["erin".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(direct, again, "the direct chat is found, not made twice");
    let group = api
        .dev_create_chat(&DevCreateChatRequest {
            participants: vec!["alice".into(), "bob".into(), "erin".into()],
            name: Some("api test".into()),
        })
        .await
        .unwrap();
    let erin_chats: Vec<ChatId> = api
        .list_chats(&erin)
        .await
        .unwrap()
        .iter()
        .map(|c| c.chat_id)
        .collect();
    assert!(erin_chats.contains(&direct) && erin_chats.contains(&group));
    bob_session.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_the_users_sockets_and_refuses_their_login_until_lifted() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let api = api(&url);
    let grace = api.dev_login("grace").await.unwrap().session_cookie;
    let mut grace_session = session(&url, &grace).await;

    api.dev_ban("grace", true).await.unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match grace_session.next_event().await {
                Some(SessionEvent::Disconnected(reason)) => return Some(reason),
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .expect("the banned user's session ends");
    assert_eq!(ended, Some(DisconnectReason::ServerDisconnect));
    let refused = api.dev_login("grace").await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::ApiStatus {
                call: ApiCall::DevLogin,
                status: 403,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(refused.class(), ErrorClass::Refused);

    api.dev_ban("grace", false).await.unwrap();
    api.dev_login("grace").await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_which_route_and_status() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let api = api(&url);
    let carol = api.dev_login("carol").await.unwrap().session_cookie;

    // carol takes no part in the order chat between alice and bob (`post-after-403`: nothing is
    // stored either, which tests/serve_chat.rs checks).
    let post = PostMessageRequest {
        content: "not mine".into(),
    };
    let err = api
        .post_message(&carol, ORDER_CHAT, &post)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ApiStatus {
                call: ApiCall::PostMessage,
                status: 403,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(
        err.to_string()
            .starts_with("POST /api/chats/{chat_id}/messages answered HTTP 403"),
        "{err}"
    );

    // A chat id that would leave its path segment stays in it: the server sees one bad id.
    let err = api
        .post_message(&carol, "../../dev/ban", &post)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ApiStatus { status: 400, .. }),
        "{err}"
    );

    let err = api.list_chats("").await.unwrap_err();
    assert!(
        matches!(err, ClientError::ApiStatus { status: 401, .. }),
        "{err}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("log in again")));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_routes_on_a_server_without_dev_and_an_unreachable_server() {
    // A production-like server: no dev routes.
    let server = common::start_dev_server_with(|c| {
        c.dev = false;
        c.secrets.session = Some("a-test-secret".into());
    })
    .await;
    let err = api(&server.http_url())
        .dev_login("alice")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ApiStatus { status: 404, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Usage);
    assert!(err.hint().is_some_and(|h| h.contains("serve --dev")));
    server.shutdown().await;

    // Port 9 (discard) on loopback: nothing listens there.
    let err = api("http://127.0.0.1:9")
        .dev_login("alice")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unreachable, "{err}");
}

/// A server that answers the first request of each connection and drops the connection,
/// unanswered, when a second request arrives on it: what a client sees when it reuses a
/// kept-alive connection at the moment the server closes it for idleness (Node's http server
/// after 5 s, `serve` after its 10 s header-read timeout).
async fn one_request_per_connection_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then the body its Content-Length announces.
                let body_len = loop {
                    let Ok(n @ 1..) = stream.read(&mut buf).await else {
                        return;
                    };
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break end + 4 + length;
                    }
                };
                while request.len() < body_len {
                    let Ok(n @ 1..) = stream.read(&mut buf).await else {
                        return;
                    };
                    request.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"data":{"result":"Success"}}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                // A second request on this connection: closed without an answer.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    url
}

/// The client's pool does not reuse a connection that sat idle longer than servers keep one
/// (src/client/http.rs): a call 4.5 s after the previous one goes out on a new connection, so
/// it cannot meet a server closing the old one (the cause of failed posts in load tests whose
/// users post some seconds after the setup's requests).
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_idle_past_servers_keep_alive_is_not_reused() {
    let url = one_request_per_connection_server().await;
    let api = api(&url);
    api.dev_ban("idle", true).await.expect("the first call");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    api.dev_ban("idle", true)
        .await
        .expect("the call after 4.5 s idle, on a new connection");
}
