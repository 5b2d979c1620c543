//! `serve` rooms, the viewing rule, broadcasts after REST posts, malformed input and metrics.

mod common;

use std::time::Duration;

use common::raw::RawSocket;
use common::*;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(400);

async fn connect(base: &str, user: &str) -> RawSocket {
    let cookie = session_cookie(base, user).await;
    RawSocket::connect(base, Some(&cookie))
        .await
        .unwrap_or_else(|r| panic!("{user} refused: {r:?}"))
}

async fn join_ack(socket: &mut RawSocket, chat_id: &str) -> Value {
    socket
        .emit_ack("clientJoinRoom", json!({ "chat_id": chat_id }))
        .await
}

fn is_iso_millis(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

on_both_stores! {
    async fn viewing_rule_for_every_chat_kind(store) {
        let server = store.start_dev_server_with(|c| c.limits.event_rate = 0).await;
        let base = server.http_url();
        // (user, chat, may view)
        let cases = [
            ("alice", ORDER_CHAT, true),  // customer, participant
            ("bob", ORDER_CHAT, true),    // assignee
            ("erin", ORDER_CHAT, true),   // contractor member
            ("frank", ORDER_CHAT, true),  // contractor member without manage_orders
            ("admin", ORDER_CHAT, true),  // admin
            ("carol", ORDER_CHAT, false), // unrelated
            ("carol", OFFER_CHAT, true),  // customer
            ("erin", OFFER_CHAT, true),   // member with manage_orders
            ("admin", OFFER_CHAT, true),  // admin passes manage_orders
            ("frank", OFFER_CHAT, false), // member without manage_orders
            ("alice", OFFER_CHAT, false),
            ("alice", DIRECT_CHAT, true),
            ("bob", DIRECT_CHAT, true),
            ("carol", DIRECT_CHAT, false), // production lets any logged-in user in (`open-direct-chats`)
            ("admin", DIRECT_CHAT, false),
            ("carol", GROUP_CHAT, true),
            ("erin", GROUP_CHAT, false),
            ("admin", GROUP_CHAT, false),
        ];
        for (user, chat, allowed) in cases {
            let mut socket = connect(&base, user).await;
            let ack = join_ack(&mut socket, chat).await;
            if allowed {
                assert_eq!(ack, json!({"ok": true}), "{user} joining {chat}");
            } else {
                assert_eq!(
                    ack,
                    json!({"ok": false, "error": "not_authorized"}),
                    "{user} joining {chat}"
                );
            }
        }
        let mut socket = connect(&base, "alice").await;
        let ack = join_ack(&mut socket, "5c0000c4-0000-4000-8000-0000000000ff").await;
        assert_eq!(ack, json!({"ok": false, "error": "chat_not_found"}));
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn broadcast_after_rest_post_matches_production_payload(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        // alice is auto-joined to the direct chat on connect: no join needed.
        let mut alice = connect(&base, "alice").await;
        let bob_cookie = session_cookie(&base, "bob").await;
        let (status, body) = post_message(&base, &bob_cookie, DIRECT_CHAT, "hello alice ✓").await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"data": {"result": "Success"}}));

        let (event, message) = alice.next_event().await;
        assert_eq!(event, "serverMessage");
        let fields: Vec<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            ["message_id", "content", "author", "chat_id", "timestamp"]
        );
        assert!(uuid::Uuid::parse_str(message["message_id"].as_str().unwrap()).is_ok());
        assert_eq!(message["content"], "hello alice ✓");
        assert_eq!(message["author"], "bob");
        assert_eq!(message["chat_id"], DIRECT_CHAT);
        let ts = message["timestamp"].as_str().unwrap();
        assert!(
            is_iso_millis(ts),
            "timestamp {ts} is not ISO-8601 with milliseconds"
        );

        // The stored history has it too, identical.
        let detail: Value = get_json(format!("{base}/api/chats/{DIRECT_CHAT}"), &bob_cookie).await;
        let last = detail["data"]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last, message);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn join_and_leave_with_and_without_ack(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let admin_cookie = session_cookie(&base, "admin").await;
        let alice_cookie = session_cookie(&base, "alice").await;
        let mut admin = RawSocket::connect(&base, Some(&admin_cookie))
            .await
            .unwrap();

        // Without an ack: production behaviour, the join is silent; then messages arrive.
        admin
            .emit("clientJoinRoom", json!({"chat_id": ORDER_CHAT}))
            .await;
        assert!(
            admin.next_event_within(QUIET).await.is_none(),
            "a join sends nothing back"
        );
        assert_eq!(
            post_message(&base, &alice_cookie, ORDER_CHAT, "one")
                .await
                .0,
            200
        );
        let (_, m) = admin.next_event().await;
        assert_eq!(m["content"], "one");

        // A refused join without ack is silent too, and joins nothing.
        admin
            .emit("clientJoinRoom", json!({"chat_id": DIRECT_CHAT}))
            .await;
        assert!(admin.next_event_within(QUIET).await.is_none());
        assert_eq!(
            post_message(&base, &alice_cookie, DIRECT_CHAT, "private")
                .await
                .0,
            200
        );
        assert!(
            admin.next_event_within(QUIET).await.is_none(),
            "refused join must not receive"
        );

        // Leave without ack, then nothing more arrives.
        admin
            .emit("clientLeaveRoom", json!({"chat_id": ORDER_CHAT}))
            .await;
        assert!(admin.next_event_within(QUIET).await.is_none());
        assert_eq!(
            post_message(&base, &alice_cookie, ORDER_CHAT, "two")
                .await
                .0,
            200
        );
        assert!(
            admin.next_event_within(QUIET).await.is_none(),
            "left the room"
        );

        // With acks.
        assert_eq!(join_ack(&mut admin, ORDER_CHAT).await, json!({"ok": true}));
        let left = admin
            .emit_ack("clientLeaveRoom", json!({"chat_id": ORDER_CHAT}))
            .await;
        assert_eq!(left, json!({"ok": true}));
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn upper_case_chat_ids_join_the_room_that_receives(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let mut admin = connect(&base, "admin").await;
        let upper = ORDER_CHAT.to_uppercase();
        assert_eq!(join_ack(&mut admin, &upper).await, json!({"ok": true}));
        let alice = session_cookie(&base, "alice").await;
        assert_eq!(post_message(&base, &alice, ORDER_CHAT, "case").await.0, 200);
        let (_, m) = admin.next_event().await;
        assert_eq!(m["content"], "case");
        // And a REST post to the upper-case path reaches the same room.
        assert_eq!(post_message(&base, &alice, &upper, "CASE").await.0, 200);
        assert_eq!(admin.next_event().await.1["chat_id"], ORDER_CHAT);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn malformed_room_events_leave_the_server_serving(store) {
        let server = store.start_dev_server_with(|c| c.limits.event_rate = 0).await;
        let base = server.http_url();
        let mut alice = connect(&base, "alice").await;
        let long = "a".repeat(100_000);
        let cases: Vec<(String, &str)> = vec![
            (r#"["clientJoinRoom"]"#.into(), "invalid_payload"),
            (r#"["clientJoinRoom",null]"#.into(), "invalid_payload"),
            (
                r#"["clientJoinRoom","5c0000c4-0000-4000-8000-000000000001"]"#.into(),
                "invalid_payload",
            ),
            (r#"["clientJoinRoom",42]"#.into(), "invalid_payload"),
            (r#"["clientJoinRoom",[1,2]]"#.into(), "invalid_payload"),
            (r#"["clientJoinRoom",{}]"#.into(), "invalid_payload"),
            (
                r#"["clientJoinRoom",{"chat_id":null}]"#.into(),
                "invalid_payload",
            ),
            (
                r#"["clientJoinRoom",{"chat_id":7}]"#.into(),
                "invalid_payload",
            ),
            (
                r#"["clientJoinRoom",{"chat_id":{"$ne":""}}]"#.into(),
                "invalid_payload",
            ),
            (
                r#"["clientJoinRoom",{"chat_id":"not-a-uuid"}]"#.into(),
                "invalid_chat_id",
            ),
            (
                r#"["clientJoinRoom",{"chat_id":"' OR 1=1 --"}]"#.into(),
                "invalid_chat_id",
            ),
            (
                format!(r#"["clientJoinRoom",{{"chat_id":"{long}"}}]"#),
                "invalid_chat_id",
            ),
            (r#"["clientLeaveRoom"]"#.into(), "invalid_payload"),
            (r#"["clientLeaveRoom",null]"#.into(), "invalid_payload"),
            (
                r#"["clientLeaveRoom",{"chat_id":"x"}]"#.into(),
                "invalid_chat_id",
            ),
            (r#"["noSuchEvent",{"a":1}]"#.into(), "unknown_event"),
            (r#"["__proto__"]"#.into(), "unknown_event"),
        ];
        for (args, reason) in &cases {
            let ack = alice.emit_raw_ack(args).await;
            assert_eq!(
                ack,
                json!({"ok": false, "error": reason}),
                "{}",
                &args[..args.len().min(80)]
            );
        }
        // The same without ack ids: nothing comes back, nothing breaks.
        for (args, _) in &cases {
            alice.send_text(&format!("42{args}")).await;
        }
        // Binary attachment in place of the argument.
        alice
            .send_text(r#"451-["clientJoinRoom",{"_placeholder":true,"num":0}]"#)
            .await;
        alice.send_binary(vec![0, 1, 2, 3]).await;
        // Garbage engine and socket.io packets.
        for junk in [
            "4",
            "42",
            "42[",
            "42{}",
            "4{",
            "9",
            "",
            "42[\"clientJoinRoom\",{\"chat_id\":\"\u{0}\"}]",
        ] {
            alice.send_text(junk).await;
        }
        // The server still serves: a fresh socket joins and receives.
        let mut bob = connect(&base, "bob").await;
        assert_eq!(join_ack(&mut bob, ORDER_CHAT).await, json!({"ok": true}));
        let carol = session_cookie(&base, "carol").await;
        assert_eq!(
            post_message(&base, &carol, GROUP_CHAT, "still up").await.0,
            200
        );
        assert_eq!(bob.next_event().await.1["content"], "still up");
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn oversized_payload_closes_only_that_socket(store) {
        let server = store.start_dev_server_with(|c| c.engine.max_payload = 10_000).await;
        let base = server.http_url();
        let mut alice = connect(&base, "alice").await;
        let huge = format!(
            r#"42["clientJoinRoom",{{"chat_id":"{}"}}]"#,
            "x".repeat(50_000)
        );
        alice.send_text(&huge).await;
        assert!(
            alice.closed_within(Duration::from_secs(5)).await,
            "oversized frame closes the socket"
        );
        let mut bob = connect(&base, "bob").await;
        assert_eq!(join_ack(&mut bob, DIRECT_CHAT).await, json!({"ok": true}));
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn event_flood_is_rate_limited_per_socket(store) {
        let server =
            store.start_dev_server_with(|c| (c.limits.event_rate, c.limits.event_burst) = (5, 10)).await;
        let base = server.http_url();
        let mut alice = connect(&base, "alice").await;
        let mut refused = 0;
        for _ in 0..40 {
            let ack = join_ack(&mut alice, DIRECT_CHAT).await;
            if ack == json!({"ok": false, "error": "rate_limited"}) {
                refused += 1;
            }
        }
        assert!(
            refused >= 20,
            "only {refused} of 40 flooded joins were limited"
        );
        // Another socket has its own budget.
        let mut bob = connect(&base, "bob").await;
        assert_eq!(join_ack(&mut bob, DIRECT_CHAT).await, json!({"ok": true}));
        let metrics = metrics_text(&base).await;
        assert!(
            metrics.contains(r#"scmarket_ws_rate_limited_total{limit="events"}"#),
            "{metrics}"
        );
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn rest_errors_store_and_broadcast_nothing(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let mut alice = connect(&base, "alice").await;
        let carol = session_cookie(&base, "carol").await;
        let alice_cookie = session_cookie(&base, "alice").await;
        let history = |cookie: String| {
            let base = base.clone();
            async move {
                let v: Value = get_json(format!("{base}/api/chats/{DIRECT_CHAT}"), cookie).await;
                v["data"]["messages"].as_array().unwrap().len()
            }
        };
        let before = history(alice_cookie.clone()).await;

        // 403: carol is not in alice and bob's direct chat (production stores and broadcasts anyway).
        let (status, body) = post_message(&base, &carol, DIRECT_CHAT, "sneaky").await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["message"], "Not authorized");
        // 401, 404, 400s.
        assert_eq!(post_message(&base, "", DIRECT_CHAT, "x").await.0, 401);
        let (status, body) = post_message(
            &base,
            &alice_cookie,
            "5c0000c4-0000-4000-8000-0000000000ff",
            "x",
        )
        .await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (404, Some("Chat not found"))
        );
        assert_eq!(post_message(&base, &alice_cookie, "nope", "x").await.0, 400);
        assert_eq!(
            post_message(&base, &alice_cookie, DIRECT_CHAT, "").await.0,
            400
        );
        assert_eq!(
            post_message(&base, &alice_cookie, DIRECT_CHAT, &"é".repeat(1001))
                .await
                .0,
            400
        );
        for body in ["", "{", "[]", r#"{"content": 5}"#, r#"{"text":"x"}"#] {
            let response = reqwest::Client::new()
                .post(format!("{base}/api/chats/{DIRECT_CHAT}/messages"))
                .header("cookie", &alice_cookie)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "body {body:?}");
            let v: Value = response.json().await.unwrap();
            assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        }
        assert!(
            alice.next_event_within(QUIET).await.is_none(),
            "no failed post may broadcast"
        );
        assert_eq!(
            history(alice_cookie.clone()).await,
            before,
            "no failed post may be stored"
        );

        // 1000 characters exactly is fine.
        assert_eq!(
            post_message(&base, &alice_cookie, DIRECT_CHAT, &"é".repeat(1000))
                .await
                .0,
            200
        );
        assert_eq!(history(alice_cookie).await, before + 1);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn rest_chat_listing_and_creation(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let carol = session_cookie(&base, "carol").await;
        let client = reqwest::Client::new();
        let list: Value = client
            .get(format!("{base}/api/chats"))
            .header("cookie", &carol)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["chat_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [OFFER_CHAT, GROUP_CHAT]);

        let create = |users: Value| {
            client
                .post(format!("{base}/api/chats"))
                .header("cookie", &carol)
                .json(&json!({ "users": users }))
                .send()
        };
        let created: Value = create(json!(["erin"])).await.unwrap().json().await.unwrap();
        let chat_id = created["data"]["chat_id"].as_str().unwrap().to_string();
        let again: Value = create(json!(["erin"])).await.unwrap().json().await.unwrap();
        assert_eq!(
            again["data"]["chat_id"],
            chat_id.as_str(),
            "the direct chat is found, not duplicated"
        );
        assert_eq!(create(json!(["nobody-here"])).await.unwrap().status(), 404);
        assert_eq!(create(json!([])).await.unwrap().status(), 400);

        // erin is auto-joined to the new chat on her next connect and gets carol's message.
        let mut erin = connect(&base, "erin").await;
        assert_eq!(
            post_message(&base, &carol, &chat_id, "hi erin").await.0,
            200
        );
        assert_eq!(erin.next_event().await.1["content"], "hi erin");
        // frank may not read it.
        let frank = session_cookie(&base, "frank").await;
        let status = client
            .get(format!("{base}/api/chats/{chat_id}"))
            .header("cookie", &frank)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn a_ban_closes_open_sockets_and_later_joins(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let mut frank = connect(&base, "frank").await;
        assert_eq!(join_ack(&mut frank, ORDER_CHAT).await, json!({"ok": true}));
        let response = reqwest::Client::new()
            .post(format!("{base}/api/dev/ban"))
            .json(&json!({"username": "frank"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            frank.closed_within(Duration::from_secs(5)).await,
            "banned user's socket closed"
        );
        let cookie_after = reqwest::Client::new()
            .post(format!("{base}/api/dev/login"))
            .json(&json!({"username": "frank"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(cookie_after, 403);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn dev_helpers_provision_users_and_rooms(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let created: Value = reqwest::Client::new()
            .post(format!("{base}/api/dev/chats"))
            .json(&json!({"participants": ["vu-1", "vu-2"], "name": "load room"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chat_id = created["data"]["chat_id"].as_str().unwrap().to_string();
        let mut vu1 = connect(&base, "vu-1").await; // auto-joined
        let vu2 = session_cookie(&base, "vu-2").await;
        assert_eq!(post_message(&base, &vu2, &chat_id, "load").await.0, 200);
        assert_eq!(vu1.next_event().await.1["author"], "vu-2");
        let bad = reqwest::Client::new()
            .post(format!("{base}/api/dev/login"))
            .json(&json!({"username": "no spaces allowed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn dev_helpers_do_not_exist_without_dev(store) {
        let server = store.start_dev_server_with(|c| {
            c.dev = false;
            c.secrets.session = Some("s3cret-for-tests".into());
        })
        .await;
        let base = server.http_url();
        for route in ["/api/dev/login", "/api/dev/chats", "/api/dev/ban"] {
            let status = reqwest::Client::new()
                .post(format!("{base}{route}"))
                .json(&json!({"username": "alice"}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404, "{route} must not exist without --dev");
        }
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn metrics_report_the_seed_list(store) {
        let server = store.start_dev_server_with(|c| c.metrics_room_labels = 1).await;
        let base = server.http_url();
        let mut alice = connect(&base, "alice").await;
        let _alice2 = connect(&base, "alice").await;
        let _ = join_ack(&mut alice, OFFER_CHAT).await; // refused
        let _ = join_ack(&mut alice, ORDER_CHAT).await;
        let cookie = session_cookie(&base, "alice").await;
        post_message(&base, &cookie, ORDER_CHAT, "a").await;
        post_message(&base, &cookie, DIRECT_CHAT, "b").await;
        let metrics = metrics_text(&base).await;
        for line in [
            "scmarket_ws_connections_active 2",
            "scmarket_ws_users_connected 1",
            "scmarket_ws_connections_per_user_count 2",
            "scmarket_ws_room_joins_total 1",
            r#"scmarket_ws_failed_joins_total{reason="not_authorized"} 1"#,
            &format!(r#"scmarket_ws_messages_sent_total{{room="{ORDER_CHAT}"}} 1"#),
            r#"scmarket_ws_messages_sent_total{room="other"} 1"#,
            r#"scmarket_ws_events_received_total{event="clientJoinRoom"} 2"#,
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "missing {line:?} in:\n{metrics}"
            );
        }
        drop(alice);
        // Duration is observed when a socket goes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let metrics = metrics_text(&base).await;
        assert!(
            metrics
                .lines()
                .any(|l| l == "scmarket_ws_connection_duration_seconds_count 1"),
            "{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l == "scmarket_ws_connections_active 1"),
            "{metrics}"
        );
        server.shutdown().await;
    }
}

on_both_stores! {
    async fn serves_its_openapi_document_and_offline_docs(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let doc: Value = reqwest::get(format!("{base}/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc, scmarket_ws::apidoc::server_document(true));
        assert!(
            doc["paths"]["/api/chats/{chat_id}/messages"]["post"].is_object(),
            "{doc}"
        );
        assert!(doc["webhooks"]["serverMessage"].is_object());
        assert_eq!(doc["x-websocket"]["path"], "/ws");
        let page = reqwest::get(format!("{base}/docs")).await.unwrap();
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("/openapi.json"));
        assert!(
            !html.contains("https://"),
            "the docs page must not load anything from the internet"
        );
        server.shutdown().await;
    }
}

// A cookie handshake reads the user's chats with the session (one round trip on PostgreSQL)
// for the auto-join at CONNECT, but only while fresh: a client that sends CONNECT later than
// `HANDSHAKE_CHATS_FRESH` after opening the engine is joined to a chat it was added to in
// between, as if the chats were read at CONNECT.
on_both_stores! {
    async fn a_late_connect_is_joined_to_a_chat_added_since_the_handshake(store) {
        let server = store.start_dev_server().await;
        let base = server.http_url();
        let carol = session_cookie(&base, "carol").await;
        let erin_cookie = session_cookie(&base, "erin").await;
        let mut erin = RawSocket::open_engine(&base, "/ws", Some(&erin_cookie), &[])
            .await
            .expect("erin's engine opens");
        let created: Value = reqwest::Client::new()
            .post(format!("{base}/api/chats"))
            .header("cookie", &carol)
            .json(&json!({ "users": ["erin"] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chat_id = created["data"]["chat_id"].as_str().unwrap().to_string();
        tokio::time::sleep(
            scmarket_ws::server::realtime::HANDSHAKE_CHATS_FRESH + Duration::from_millis(300),
        )
        .await;
        erin.send_text("40").await;
        let connect = erin.next_packet().await.expect("CONNECT answer");
        assert!(connect.starts_with("40"), "{connect}");
        assert_eq!(
            post_message(&base, &carol, &chat_id, "since your handshake").await.0,
            200
        );
        let (event, message) = erin.next_event().await;
        assert_eq!(event, "serverMessage");
        assert_eq!(message["content"], "since your handshake");
        server.shutdown().await;
    }
}
