//! `serve` handshake authentication, Origin policy and handshake limits, over real sockets.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::raw::RawSocket;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scmarket_ws::protocol::HANDSHAKE_REFUSAL_BODY;
use scmarket_ws::server::auth::{AccessClaims, DEV_SECRET, Secrets, sign_session_cookie};

const ALICE_ID: &str = "5c000000-0000-4000-8000-000000000001";
const DAVE_ID: &str = "5c000000-0000-4000-8000-000000000004";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(sub: &str, exp: u64, secret: &str) -> String {
    let claims = AccessClaims {
        sub: sub.into(),
        role: "user".into(),
        username: "x".into(),
        iat: now(),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A polling handshake: status and body.
async fn polling_handshake(
    base: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{base}/ws/?EIO=4&transport=polling"));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn assert_refused(base: &str, cookie: Option<&str>, why: &str) {
    let (status, body) = polling_handshake(base, cookie, None).await;
    assert_eq!(status, 400, "{why}: polling status");
    assert_eq!(body, HANDSHAKE_REFUSAL_BODY, "{why}: polling body");
    let refused = RawSocket::connect(base, cookie)
        .await
        .err()
        .unwrap_or_else(|| panic!("{why}: websocket handshake was accepted"));
    assert_eq!(refused.status, 400, "{why}: websocket status");
    assert!(
        !refused.body.contains("code"),
        "{why}: websocket refusal is a plain 400, got {:?}",
        refused.body
    );
}

async fn assert_accepted(base: &str, cookie: &str, why: &str) {
    let (status, body) = polling_handshake(base, Some(cookie), None).await;
    assert_eq!(status, 200, "{why}: polling status, body {body}");
    assert!(
        body.starts_with("0{\"sid\""),
        "{why}: open packet, got {body}"
    );
    let socket = RawSocket::connect(base, Some(cookie)).await;
    assert!(
        socket.is_ok(),
        "{why}: websocket refused: {:?}",
        socket.err()
    );
}

on_both_stores! {
    async fn no_credentials_are_refused_like_production(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        assert_refused(&base, None, "no cookie").await;
        assert_refused(&base, Some("other=1"), "unrelated cookie").await;
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn session_cookie_and_access_token_are_accepted(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let login = dev_login(&base, "alice").await;
        assert_accepted(&base, &login.session_cookie, "session cookie").await;
        assert_accepted(&base, &login.access_cookie, "access token").await;

        // A valid token within the 30 s leeway after expiry still counts.
        let leeway = format!("scmarket.access={}", jwt(ALICE_ID, now() - 10, DEV_SECRET));
        assert_accepted(&base, &leeway, "token 10 s past exp").await;

        // A broken token falls back to a valid session cookie, as production.
        let both = format!("scmarket.access=garbage; {}", login.session_cookie);
        assert_accepted(&base, &both, "bad token, good session").await;
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn forged_expired_and_unsigned_credentials_are_refused(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();

        let expired = format!("scmarket.access={}", jwt(ALICE_ID, now() - 120, DEV_SECRET));
        assert_refused(&base, Some(&expired), "expired token").await;

        let wrong_key = format!(
            "scmarket.access={}",
            jwt(ALICE_ID, now() + 600, "not the secret")
        );
        assert_refused(&base, Some(&wrong_key), "token signed with another secret").await;

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(format!(r#"{{"sub":"{ALICE_ID}","exp":{}}}"#, now() + 600));
        let unsigned = format!("scmarket.access={header}.{payload}.");
        assert_refused(&base, Some(&unsigned), "alg none").await;

        // A token not valid before a time beyond the leeway is refused, as production's
        // jsonwebtoken refuses it (NotBeforeError); within the leeway it passes.
        let not_yet = |nbf: u64| {
            let claims = serde_json::json!({"sub": ALICE_ID, "exp": now() + 3600, "nbf": nbf});
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(DEV_SECRET.as_bytes()),
            )
            .unwrap();
            format!("scmarket.access={token}")
        };
        assert_refused(&base, Some(&not_yet(now() + 600)), "nbf 10 min ahead").await;
        assert_accepted(&base, &not_yet(now() + 10), "nbf within the leeway").await;

        let unknown_user = format!(
            "scmarket.access={}",
            jwt(
                "5c000000-0000-4000-8000-0000000000ff",
                now() + 600,
                DEV_SECRET
            )
        );
        assert_refused(&base, Some(&unknown_user), "token for an unknown user").await;

        let login = dev_login(&base, "alice").await;
        let forged = login.session_cookie.replacen("s%3A", "s%3Ax", 1);
        assert_refused(&base, Some(&forged), "tampered session id").await;
        let other_secret = Secrets::new("another secret".into(), None);
        let resigned = format!("scmarket.sid={}", sign_session_cookie("abc", &other_secret));
        assert_refused(&base, Some(&resigned), "session signed with another secret").await;
        assert_refused(
            &base,
            Some("scmarket.sid=s%3Anosignature"),
            "malformed session",
        )
        .await;

        let dev_secrets = Secrets::new(DEV_SECRET.into(), None);
        let unknown_sid = format!(
            "scmarket.sid={}",
            sign_session_cookie("nosuchsession", &dev_secrets)
        );
        assert_refused(&base, Some(&unknown_sid), "well signed, unknown session").await;

        // An expired login_sessions row does not count.
        let store = &server.app().store;
        let alice = uuid::Uuid::parse_str(ALICE_ID).unwrap();
        let sid = store
            .create_login_session(alice, Duration::ZERO)
            .await
            .unwrap();
        let expired_session = format!("scmarket.sid={}", sign_session_cookie(&sid, &dev_secrets));
        assert_refused(&base, Some(&expired_session), "expired session row").await;

        let metrics = metrics_text(&base).await;
        for reason in [
            "token_expired",
            "token_not_yet_valid",
            "token_invalid",
            "user_unknown",
            "session_bad_signature",
            "session_malformed",
            "session_unknown",
        ] {
            assert!(
                metrics.contains(&format!(
                    "scmarket_ws_handshakes_refused_total{{reason=\"{reason}\"}}"
                )),
                "refusal reason {reason} missing from /metrics:\n{metrics}"
            );
        }
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn banned_users_are_refused_by_either_cookie(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let dave = uuid::Uuid::parse_str(DAVE_ID).unwrap();
        let secrets = Secrets::new(DEV_SECRET.into(), None);
        let sid = server
            .app()
            .store
            .create_login_session(dave, Duration::from_secs(600))
            .await
            .unwrap();
        let cookie = format!("scmarket.sid={}", sign_session_cookie(&sid, &secrets));
        assert_refused(&base, Some(&cookie), "banned user, session cookie").await;
        let token = format!("scmarket.access={}", jwt(DAVE_ID, now() + 600, DEV_SECRET));
        assert_refused(&base, Some(&token), "banned user, access token").await;
        // And dev login will not mint cookies for them.
        let response = reqwest::Client::new()
            .post(format!("{base}/api/dev/login"))
            .json(&serde_json::json!({"username": "dave"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn origin_allowlist_is_enforced(store) {
        let server =
            store.start_dev_server_with(|c| c.allowed_origins = vec!["https://sc-market.space".into()]).await;
        let base = server.http_url();
        let cookie = session_cookie(&base, "alice").await;

        let (status, body) =
            polling_handshake(&base, Some(&cookie), Some("https://evil.example")).await;
        assert_eq!(status, 403, "disallowed Origin on polling");
        assert_eq!(body, r#"{"code":4,"message":"Forbidden"}"#);
        let refused = RawSocket::connect_with(
            &base,
            "/ws",
            Some(&cookie),
            &[("origin", "https://evil.example")],
        )
        .await
        .err()
        .expect("disallowed Origin on websocket is refused");
        assert_eq!(refused.status, 403);

        let (status, _) =
            polling_handshake(&base, Some(&cookie), Some("https://sc-market.space")).await;
        assert_eq!(status, 200, "listed Origin");
        let (status, _) = polling_handshake(&base, Some(&cookie), None).await;
        assert_eq!(status, 200, "no Origin header");
        let same_origin = base.clone();
        let (status, _) = polling_handshake(&base, Some(&cookie), Some(&same_origin)).await;
        assert_eq!(status, 200, "same origin");
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn handshake_rate_limit_per_ip(store) {
        let server =
            store.start_dev_server_with(|c| (c.limits.handshake_rate, c.limits.handshake_burst) = (1, 3))
                .await;
        let base = server.http_url();
        let cookie = session_cookie(&base, "alice").await;
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(polling_handshake(&base, Some(&cookie), None).await.0);
        }
        assert_eq!(
            &statuses[..3],
            &[200, 200, 200],
            "burst allowed: {statuses:?}"
        );
        assert!(statuses[3..].contains(&429), "over the limit: {statuses:?}");
        let metrics = metrics_text(&base).await;
        assert!(
            metrics.contains(r#"scmarket_ws_rate_limited_total{limit="handshake"}"#),
            "{metrics}"
        );
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn per_user_socket_cap(store) {
        let server = store.start_dev_server_with(|c| c.limits.max_connections_per_user = 2).await;
        let base = server.http_url();
        let cookie = session_cookie(&base, "alice").await;
        let _a = RawSocket::connect(&base, Some(&cookie))
            .await
            .expect("first socket");
        let _b = RawSocket::connect(&base, Some(&cookie))
            .await
            .expect("second socket");
        let third = RawSocket::connect(&base, Some(&cookie))
            .await
            .err()
            .expect("third socket refused");
        assert_eq!(third.status, 429);
        // Another user is not affected.
        let bob = session_cookie(&base, "bob").await;
        RawSocket::connect(&base, Some(&bob))
            .await
            .expect("bob connects");
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn custom_engine_path(store) {
        let server = store.start_dev_server_with(|c| c.engine.path = "/realtime".into()).await;
        let base = server.http_url();
        let cookie = session_cookie(&base, "alice").await;
        RawSocket::connect_with(&base, "/realtime", Some(&cookie), &[])
            .await
            .expect("socket on the custom path");
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn open_packet_has_the_configured_engine_settings(store) {
        let server = store.start_dev_server_with(|c| {
            c.engine.ping_interval = Duration::from_secs(10);
            c.engine.ping_timeout = Duration::from_secs(5);
            c.engine.max_payload = 50_000;
        })
        .await;
        let base = server.http_url();
        let cookie = session_cookie(&base, "alice").await;
        let socket = RawSocket::connect(&base, Some(&cookie)).await.unwrap();
        assert_eq!(socket.open["pingInterval"], 10000);
        assert_eq!(socket.open["pingTimeout"], 5000);
        assert_eq!(socket.open["maxPayload"], 50000);
        server.shutdown().await;
    }
}

/// `GET /api/chats/:id` as the owner of `cookie`: the status.
async fn get_chat_status(base: &str, cookie: &str, chat_id: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/chats/{chat_id}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// The REST routes on one chat read the caller and the chat's access facts in one lookup
// (`Store::session_chat_facts`, `Store::join_facts`): every caller the handshake refuses is
// refused there too, with 401 before the chat is judged (no 400, 404 or 403 that would tell a
// stranger about the chat), and nothing is stored or broadcast.
on_both_stores! {
    async fn rest_calls_on_a_chat_refuse_whom_the_handshake_refuses(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let secrets = Secrets::new(DEV_SECRET.into(), None);
        let app_store = &server.app().store;
        let signed = |sid: &str| format!("scmarket.sid={}", sign_session_cookie(sid, &secrets));
        // Bob takes part in the direct chat and is never banned here: only the expiry refuses
        // his expired session.
        let bob_id = uuid::Uuid::parse_str("5c000000-0000-4000-8000-000000000002").unwrap();

        let bob = dev_login(&base, "bob").await;
        let mut bob_socket = RawSocket::connect(&base, Some(&bob.session_cookie)).await.unwrap();
        let joined = bob_socket
            .emit_ack("clientJoinRoom", serde_json::json!({ "chat_id": DIRECT_CHAT }))
            .await;
        assert_eq!(joined, serde_json::json!({"ok": true}));
        let history = || async {
            let v = get_json(format!("{base}/api/chats/{DIRECT_CHAT}"), &bob.session_cookie).await;
            v["data"]["messages"].as_array().unwrap().len()
        };
        let before = history().await;

        let expired = app_store.create_login_session(bob_id, Duration::ZERO).await.unwrap();
        let nobody = app_store
            .create_login_session(uuid::Uuid::new_v4(), Duration::from_secs(600))
            .await
            .unwrap();
        let dave = uuid::Uuid::parse_str(DAVE_ID).unwrap();
        let dave_sid = app_store.create_login_session(dave, Duration::from_secs(600)).await.unwrap();
        // Alice takes part in the direct chat; banned, she may post there no more, by either
        // cookie.
        let alice = dev_login(&base, "alice").await;
        let ban = reqwest::Client::new()
            .post(format!("{base}/api/dev/ban"))
            .json(&serde_json::json!({"username": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ban.status(), 200);

        let refused = [
            ("no cookie", String::new()),
            ("well signed, unknown session", signed("nosuchsession")),
            ("expired session row", signed(&expired)),
            ("session of a user that does not exist", signed(&nobody)),
            ("banned user, session cookie", signed(&dave_sid)),
            ("banned participant, session cookie", alice.session_cookie.clone()),
            ("banned participant, access token", alice.access_cookie.clone()),
            (
                "banned participant, both cookies",
                format!("{}; {}", alice.access_cookie, alice.session_cookie),
            ),
            (
                "banned user, access token",
                format!("scmarket.access={}", jwt(DAVE_ID, now() + 600, DEV_SECRET)),
            ),
            (
                "expired token, no session",
                format!("scmarket.access={}", jwt(ALICE_ID, now() - 120, DEV_SECRET)),
            ),
        ];
        for (why, cookie) in &refused {
            for chat in [DIRECT_CHAT, "5c0000c4-0000-4000-8000-0000000000ff", "not-a-chat-id"] {
                let (status, body) = post_message(&base, cookie, chat, "refused").await;
                assert_eq!(status, 401, "{why}: post to {chat}: {body}");
                assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{why}");
                assert_eq!(get_chat_status(&base, cookie, chat).await, 401, "{why}: get {chat}");
            }
        }
        assert!(
            bob_socket.next_event_within(Duration::from_millis(400)).await.is_none(),
            "no refused post may broadcast"
        );
        assert_eq!(history().await, before, "no refused post may be stored");

        // Authenticated by either cookie, the chat is judged: 400, 404, 403, then 200.
        let carol = dev_login(&base, "carol").await;
        for cookie in [&carol.session_cookie, &carol.access_cookie] {
            assert_eq!(post_message(&base, cookie, "not-a-chat-id", "x").await.0, 400);
            let unknown = "5c0000c4-0000-4000-8000-0000000000ff";
            assert_eq!(post_message(&base, cookie, unknown, "x").await.0, 404);
            assert_eq!(get_chat_status(&base, cookie, unknown).await, 404);
            assert_eq!(post_message(&base, cookie, DIRECT_CHAT, "x").await.0, 403);
            assert_eq!(get_chat_status(&base, cookie, DIRECT_CHAT).await, 403);
            assert_eq!(post_message(&base, cookie, GROUP_CHAT, "hi").await.0, 200);
            assert_eq!(get_chat_status(&base, cookie, GROUP_CHAT).await, 200);
        }
        for cookie in [&bob.session_cookie, &bob.access_cookie] {
            assert_eq!(post_message(&base, cookie, DIRECT_CHAT, "ok").await.0, 200);
        }
        assert_eq!(history().await, before + 2);
        server.shutdown().await;
    }
}
