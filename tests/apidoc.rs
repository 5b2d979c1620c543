//! `spec`: the real binary on the real TSOA fixture, and the result checked by a real OpenAPI
//! validator (openapi-spec-validator from PyPI, installed into a venv under target/ on first use).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const MERGED_KEYS: [&str; 3] = ["components", "webhooks", "x-websocket"];
const WS_SCHEMAS: [&str; 3] = ["WebSocketMessage", "JoinRoomRequest", "LeaveRoomRequest"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scmarket-v2-swagger.json")
}

fn spec(args: &[&str]) -> Output {
    common::binary::command()
        .arg("spec")
        .args(args)
        .output()
        .expect("run scmarket-ws")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally, not by a signal")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read output")).expect("valid JSON")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Merge `base` with extra flags into `dir/name`, expecting success.
fn merge_ok(base: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["merge", "--base", s(base), "-o", s(out)];
    args.extend_from_slice(extra);
    let result = spec(&args);
    assert_eq!(code(&result), 0, "merge failed: {}", text(&result.stderr));
    result
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test input");
    path
}

/// Only the files a test created itself: no temporary leftovers, no half-written output.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn merge_leaves_everything_outside_the_merged_keys_byte_for_byte_equal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.json");
    let result = merge_ok(&fixture(), &out, &[]);
    let base = read_json(&fixture());
    let merged = read_json(&out);

    // The base's key order, then what the merge appended.
    let base_keys: Vec<&String> = base.as_object().unwrap().keys().collect();
    let merged_keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(merged_keys[..base_keys.len()], base_keys[..]);
    assert_eq!(merged_keys[base_keys.len()..], ["webhooks", "x-websocket"]);

    for (key, value) in base.as_object().unwrap() {
        if MERGED_KEYS.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(
            serde_json::to_string(&merged[key]).unwrap(),
            serde_json::to_string(value).unwrap(),
            "top-level `{key}` changed"
        );
    }
    for (section, value) in base["components"].as_object().unwrap() {
        if section != "schemas" {
            assert_eq!(
                serde_json::to_string(&merged["components"][section]).unwrap(),
                serde_json::to_string(value).unwrap(),
                "components.{section} changed"
            );
        }
    }
    let base_schemas = base["components"]["schemas"].as_object().unwrap();
    let merged_schemas = merged["components"]["schemas"].as_object().unwrap();
    assert_eq!(base_schemas.len(), 282);
    assert_eq!(merged_schemas.len(), 282 + 3);
    for (i, ((name, schema), (merged_name, merged_schema))) in
        base_schemas.iter().zip(merged_schemas).enumerate()
    {
        assert_eq!(merged_name, name, "schema order changed at {i}");
        assert_eq!(
            serde_json::to_string(merged_schema).unwrap(),
            serde_json::to_string(schema).unwrap(),
            "schema {name} changed"
        );
    }
    assert_eq!(base["paths"].as_object().unwrap().len(), 141);

    // The websocket part, exactly as `spec websocket` produces it.
    let ws: Value = serde_json::from_slice(&spec(&["websocket"]).stdout).unwrap();
    for name in WS_SCHEMAS {
        assert_eq!(
            merged_schemas[name], ws["components"]["schemas"][name],
            "{name}"
        );
    }
    assert_eq!(
        merged["webhooks"]["serverMessage"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/WebSocketMessage"
    );
    assert_eq!(merged["x-websocket"], ws["x-websocket"]);

    // 2-space JSON, and a 3.0 base is told what it lacks.
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.starts_with("{\n  \"openapi\": \"3.0.0\",\n  \"components\": {\n    \"examples\"")
    );
    let stderr = text(&result.stderr);
    assert!(stderr.contains("need OpenAPI 3.1"), "{stderr}");
    assert!(stderr.contains("--openapi-version 3.1.0"), "{stderr}");
    assert!(!stderr.contains("overwrote"), "{stderr}");
}

#[test]
fn websocket_schemas_describe_the_real_payload() {
    let out = spec(&["websocket"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let msg = &doc["components"]["schemas"]["WebSocketMessage"];
    let props = msg["properties"].as_object().unwrap();
    let names: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["message_id", "content", "author", "chat_id", "timestamp"]
    );
    assert!(
        !props.contains_key("type"),
        "production sends no `type` field"
    );
    assert_eq!(props["author"]["type"], json!(["string", "null"]));
    assert_eq!(props["timestamp"]["type"], "string");
    assert_eq!(props["timestamp"]["format"], "date-time");
    assert_eq!(props["message_id"]["format"], "uuid");
    assert_eq!(props["chat_id"]["format"], "uuid");
    assert_eq!(props["content"]["maxLength"], 1000);
    for schema in WS_SCHEMAS {
        let s = &doc["components"]["schemas"][schema];
        assert!(
            s.get("$schema").is_none() && s.get("$defs").is_none(),
            "{schema}: {s}"
        );
    }
    for request in ["JoinRoomRequest", "LeaveRoomRequest"] {
        assert_eq!(
            doc["components"]["schemas"][request]["required"],
            json!(["chat_id"])
        );
    }

    // The backend's key set, key for key; anything added is an `x-` key.
    let ext = &doc["x-websocket"];
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(ext),
        [
            "path",
            "protocol",
            "description",
            "authentication",
            "connection",
            "events",
            "rooms",
            "errorHandling"
        ]
    );
    assert_eq!(keys(&ext["authentication"]), ["type", "description"]);
    assert_eq!(keys(&ext["connection"]), ["url", "options"]);
    assert_eq!(
        keys(&ext["connection"]["url"]),
        ["production", "development"]
    );
    assert_eq!(
        keys(&ext["connection"]["options"]),
        ["withCredentials", "path"]
    );
    assert_eq!(
        keys(&ext["events"]),
        ["client-to-server", "server-to-client"]
    );
    assert_eq!(keys(&ext["rooms"]), ["description", "naming"]);
    assert_eq!(keys(&ext["errorHandling"]), ["description", "errors"]);
    assert_eq!(ext["path"], "/ws");
    assert_eq!(ext["connection"]["options"]["path"], "/ws");
    let events: Vec<(&str, &Value)> = ["client-to-server", "server-to-client"]
        .iter()
        .flat_map(|d| ext["events"][d].as_array().unwrap())
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    let event_names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        event_names,
        ["clientJoinRoom", "clientLeaveRoom", "serverMessage"]
    );
    for (name, event) in events {
        for key in keys(event) {
            assert!(
                ["name", "description", "schema"].contains(&key.as_str()) || key.starts_with("x-"),
                "{name}: unexpected key {key}"
            );
        }
    }
    // The reference server's acknowledgement, with its reasons from RoomError.
    let ack = &ext["events"]["client-to-server"][0]["x-acknowledgement"]["schema"];
    assert_eq!(ack["required"], json!(["ok"]));
    let errors: Vec<&str> = ext["errorHandling"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        errors.contains(&"not_authorized") && errors.contains(&"rate_limited"),
        "{errors:?}"
    );
}

#[test]
fn conflicts_are_reported_and_can_fail_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.json",
        r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "components": {"schemas": {"WebSocketMessage": {"type": "object", "properties": {"type": {"type": "string"}}}}},
            "webhooks": {"other": {}},
            "x-websocket": {"path": "/socket"}}"#,
    );
    let out = dir.path().join("out.json");
    let result = merge_ok(&base, &out, &[]);
    let stderr = text(&result.stderr);
    assert!(
        stderr.contains("overwrote /components/schemas/WebSocketMessage"),
        "{stderr}"
    );
    assert!(stderr.contains("overwrote /x-websocket"), "{stderr}");
    assert!(
        !stderr.contains("need OpenAPI 3.1"),
        "3.1 base needs no warning: {stderr}"
    );
    let merged = read_json(&out);
    assert_eq!(
        merged["webhooks"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["other", "serverMessage"]
    );

    // Merging the result again changes nothing, so it reports nothing.
    let again = merge_ok(
        &out,
        &dir.path().join("again.json"),
        &["--on-conflict", "error"],
    );
    assert!(
        !text(&again.stderr).contains("overwrote"),
        "{}",
        text(&again.stderr)
    );

    // --on-conflict error: exit 1, and an existing output file is left as it was.
    let existing = write(dir.path(), "existing.json", "keep me");
    let failed = spec(&[
        "merge",
        "--base",
        s(&base),
        "-o",
        s(&existing),
        "--on-conflict",
        "error",
    ]);
    assert_eq!(code(&failed), 1, "{}", text(&failed.stderr));
    assert!(
        text(&failed.stderr).contains("--on-conflict is error"),
        "{}",
        text(&failed.stderr)
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    assert_eq!(
        files_in(dir.path()),
        ["again.json", "base.json", "existing.json", "out.json"]
    );
}

#[test]
fn yaml_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("merged.yaml");
    // The extension picks YAML when --format is not given.
    merge_ok(&fixture(), &yaml, &[]);
    let yaml_text = std::fs::read_to_string(&yaml).unwrap();
    assert!(yaml_text.starts_with("openapi: "), "{}", &yaml_text[..80]);
    let from_yaml: Value = serde_saphyr::from_str(&yaml_text).expect("valid YAML");
    let json_out = dir.path().join("merged.json");
    merge_ok(&fixture(), &json_out, &[]);
    assert_eq!(
        from_yaml,
        read_json(&json_out),
        "YAML and JSON outputs carry the same document"
    );

    // A YAML base merges to the same document as its JSON twin.
    let again = dir.path().join("again.out");
    merge_ok(&yaml, &again, &["--format", "json"]);
    assert_eq!(read_json(&again), read_json(&json_out));

    let ws_yaml = spec(&["websocket", "--format", "yaml"]);
    assert_eq!(code(&ws_yaml), 0);
    let ws: Value = serde_saphyr::from_str(&text(&ws_yaml.stdout)).unwrap();
    let ws_json: Value = serde_json::from_slice(&spec(&["websocket"]).stdout).unwrap();
    assert_eq!(ws, ws_json);
}

#[test]
fn raising_to_3_1_converts_nullable() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.json");
    let result = merge_ok(&fixture(), &out, &["--openapi-version", "3.1.0"]);
    let stderr = text(&result.stderr);
    assert!(stderr.contains("raised openapi 3.0.0 -> 3.1.0"), "{stderr}");
    assert!(stderr.contains("converted 175 nullable"), "{stderr}");
    assert!(!stderr.contains("need OpenAPI 3.1"), "{stderr}");
    let doc = read_json(&out);
    assert_eq!(doc["openapi"], "3.1.0");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        !written.contains("\"nullable\""),
        "a nullable keyword survived"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SupplierEntityInfo"]["properties"]["avatar"],
        json!({"type": ["string", "null"]})
    );
    assert_eq!(
        schemas["SupplierRelationship"]["properties"]["tier"],
        json!({"anyOf": [{"$ref": "#/components/schemas/SupplierTier"}, {"type": "null"}]})
    );
    let pickup = &schemas["ListingSearchResult"]["properties"]["pickup_method"];
    assert_eq!(pickup["type"], json!(["string", "null"]));
    assert_eq!(pickup["enum"], json!(["delivery", "pickup", "any", null]));
    // Nothing but schemas and the version changed.
    let base = read_json(&fixture());
    assert_eq!(doc["info"], base["info"]);
    assert_eq!(doc["servers"], base["servers"]);
}

#[test]
fn unresolved_refs_are_named_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Gone'}\n",
    );
    let out = dir.path().join("out.json");
    let result = spec(&["merge", "--base", s(&base), "-o", s(&out)]);
    assert_eq!(code(&result), 1, "{}", text(&result.stderr));
    let stderr = text(&result.stderr);
    assert!(
        stderr.contains(
            "/paths/~1a~1{id}/get/responses/200/content/application~1json/schema/$ref: \"#/components/schemas/Gone\""
        ),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(files_in(dir.path()), ["base.yaml"]);
}

#[test]
fn drift_check_passes_on_generated_docs_and_fails_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("merged.json");
    merge_ok(&fixture(), &merged, &[]);
    let ok = spec(&["check", s(&merged)]);
    assert_eq!(code(&ok), 0, "{}{}", text(&ok.stdout), text(&ok.stderr));
    let ws = dir.path().join("ws.yaml");
    assert_eq!(code(&spec(&["websocket", "-o", s(&ws)])), 0);
    assert_eq!(code(&spec(&["check", s(&ws)])), 0);

    // What the backend's hand-written docs claim: drift.
    let mut doc = read_json(&merged);
    doc["components"]["schemas"]["WebSocketMessage"]["properties"]["timestamp"] =
        json!({"type": "number", "description": "Unix timestamp in milliseconds"});
    doc["x-websocket"]["rooms"]["naming"] = json!("chat-123");
    doc["webhooks"]
        .as_object_mut()
        .unwrap()
        .remove("serverMessage");
    let drifted = write(dir.path(), "drifted.json", &doc.to_string());
    let bad = spec(&["check", s(&drifted)]);
    assert_eq!(code(&bad), 1);
    let diff = text(&bad.stdout);
    assert!(diff.contains("@@ /components/schemas/WebSocketMessage/properties/timestamp/type\n- \"string\"\n+ \"number\""), "{diff}");
    assert!(diff.contains("@@ /components/schemas/WebSocketMessage/properties/timestamp/format\n- \"date-time\"\n+ (missing)"), "{diff}");
    assert!(diff.contains("@@ /webhooks/serverMessage\n"), "{diff}");
    assert!(diff.contains("@@ /x-websocket/rooms/naming\n"), "{diff}");
    assert!(
        text(&bad.stderr).contains("differs from the generated docs"),
        "{}",
        text(&bad.stderr)
    );

    // Not an OpenAPI document is bad input, not drift.
    let junk = write(dir.path(), "junk.json", "[1, 2]");
    assert_eq!(code(&spec(&["check", s(&junk)])), 2);
}

#[test]
fn bad_input_is_named_located_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            write(
                dir.path(),
                "broken.json",
                "{\n  \"openapi\": \"3.0.0\",\n  \"info\": {,\n}",
            ),
            vec!["broken.json:3:12: not valid JSON"],
        ),
        (
            write(
                dir.path(),
                "broken.yaml",
                "openapi: 3.0.0\ninfo:\n  title: [unclosed\n  version: 1\n",
            ),
            vec!["broken.yaml:", "not valid YAML"],
        ),
        (
            write(dir.path(), "text.txt", "just some words"),
            vec!["text.txt: not an OpenAPI document: the top level is a string"],
        ),
        (
            write(
                dir.path(),
                "noversion.json",
                r#"{"info": {"title": "t", "version": "1"}, "paths": {}}"#,
            ),
            vec!["noversion.json: not an OpenAPI document: no `openapi` version field"],
        ),
        (
            write(
                dir.path(),
                "numberversion.yaml",
                "openapi: 3.1\ninfo: {title: t, version: '1'}\n",
            ),
            vec!["numberversion.yaml: not an OpenAPI document: `openapi` is a number"],
        ),
        (
            write(
                dir.path(),
                "noinfo.json",
                r#"{"openapi": "3.0.0", "paths": {}}"#,
            ),
            vec!["noinfo.json: not an OpenAPI document: no `info` object"],
        ),
        (
            write(
                dir.path(),
                "swagger.json",
                r#"{"swagger": "2.0", "info": {}}"#,
            ),
            vec!["swagger.json: not an OpenAPI document: this is a Swagger 2.0 document"],
        ),
        (
            write(dir.path(), "empty.yaml", "\n\n"),
            vec!["empty.yaml: the file is empty"],
        ),
        (
            dir.path().join("missing.json"),
            vec!["cannot read", "missing.json"],
        ),
    ];
    let binary = dir.path().join("binary.json");
    std::fs::write(&binary, [0x7b, 0xff, 0xfe, 0x00]).unwrap();
    let mut cases = cases;
    cases.push((binary, vec!["binary.json: not UTF-8 text"]));
    let out = dir.path().join("out.json");
    for (input, expected) in &cases {
        let result = spec(&["merge", "--base", s(input), "-o", s(&out)]);
        let stderr = text(&result.stderr);
        assert_eq!(code(&result), 2, "{}: {stderr}", input.display());
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{}: expected {needle:?} in {stderr}",
                input.display()
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !out.exists(),
            "{}: an output file was written",
            input.display()
        );
    }
    // A websocket file that is not websocket docs is bad input too.
    let not_ws = write(
        dir.path(),
        "not-ws.json",
        r#"{"openapi": "3.1.0", "info": {}}"#,
    );
    let result = spec(&[
        "merge",
        "--base",
        s(&fixture()),
        "--websocket",
        s(&not_ws),
        "-o",
        s(&out),
    ]);
    assert_eq!(code(&result), 2, "{}", text(&result.stderr));
    assert!(text(&result.stderr).contains("not-ws.json: not websocket documentation"));
    assert!(!out.exists());

    let before = files_in(dir.path());
    // Unwritable outputs: a directory that does not exist, and a "directory" that is a file.
    let missing_dir = dir.path().join("no/such/dir/out.json");
    let under_file = dir.path().join("empty.yaml/out.json");
    for target in [&missing_dir, &under_file] {
        let result = spec(&["merge", "--base", s(&fixture()), "-o", s(target)]);
        assert_eq!(code(&result), 2, "{}", text(&result.stderr));
        assert!(
            text(&result.stderr).contains("cannot write"),
            "{}",
            text(&result.stderr)
        );
        assert!(!target.exists());
    }
    assert_eq!(
        files_in(dir.path()),
        before,
        "no temporary file left behind"
    );
}

#[test]
fn merge_with_a_websocket_file_uses_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws_path = dir.path().join("ws.json");
    assert_eq!(code(&spec(&["websocket", "-o", s(&ws_path)])), 0);
    let mut ws = read_json(&ws_path);
    ws["x-websocket"]["path"] = json!("/custom");
    std::fs::write(&ws_path, ws.to_string()).unwrap();
    let out = dir.path().join("out.json");
    merge_ok(&fixture(), &out, &["--websocket", s(&ws_path)]);
    assert_eq!(read_json(&out)["x-websocket"]["path"], "/custom");
}

#[test]
fn asyncapi_document_shape() {
    let out = spec(&["asyncapi"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let channels = doc["channels"].as_object().unwrap();
    assert_eq!(channels.len(), 1);
    let (channel_name, channel) = channels.iter().next().unwrap();
    assert_eq!(channel["address"], "/ws");
    let channel_ref = format!("#/channels/{channel_name}");
    for (op, action) in [
        ("clientJoinRoom", "send"),
        ("clientLeaveRoom", "send"),
        ("serverMessage", "receive"),
    ] {
        let operation = &doc["operations"][op];
        assert_eq!(operation["action"], action, "{op}");
        assert_eq!(operation["channel"]["$ref"], channel_ref.as_str(), "{op}");
        assert_eq!(
            operation["messages"][0]["$ref"],
            format!("{channel_ref}/messages/{op}"),
            "{op}"
        );
    }
    for (message, schema) in [
        ("clientJoinRoom", "JoinRoomRequest"),
        ("clientLeaveRoom", "LeaveRoomRequest"),
        ("serverMessage", "WebSocketMessage"),
    ] {
        assert_eq!(
            doc["components"]["messages"][message]["payload"]["$ref"],
            format!("#/components/schemas/{schema}")
        );
    }
    // The same generated schemas as the OpenAPI side.
    let ws: Value = serde_json::from_slice(&spec(&["websocket"]).stdout).unwrap();
    for schema in WS_SCHEMAS {
        assert_eq!(
            doc["components"]["schemas"][schema],
            ws["components"]["schemas"][schema]
        );
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let cookies: Vec<&str> = schemes
        .values()
        .map(|s| {
            assert_eq!(s["type"], "httpApiKey");
            assert_eq!(s["in"], "cookie");
            s["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(cookies, ["scmarket.access", "scmarket.sid"]);
    assert_eq!(doc["servers"]["production"]["host"], "api.sc-market.space");
    assert_eq!(doc["servers"]["production"]["pathname"], "/ws");
}

// ---- a real OpenAPI validator ----

/// openapi-spec-validator from the tests' venv (`tests/requirements.txt`).
fn validator() -> PathBuf {
    common::python::venv().join("bin/openapi-spec-validator")
}

fn validate(path: &Path) -> Output {
    Command::new(validator())
        .arg(path)
        .output()
        .expect("run openapi-spec-validator")
}

#[test]
fn merged_fixture_raised_to_3_1_is_valid_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.json");
    merge_ok(&fixture(), &out, &["--openapi-version", "3.1.0"]);
    let result = validate(&out);
    assert!(
        result.status.success(),
        "{}{}",
        text(&result.stdout),
        text(&result.stderr)
    );
    assert!(
        text(&result.stdout).contains("OK"),
        "{}",
        text(&result.stdout)
    );

    // The YAML rendering of the same document is valid too.
    let yaml = dir.path().join("merged.yaml");
    merge_ok(&fixture(), &yaml, &["--openapi-version", "3.1.0"]);
    let result = validate(&yaml);
    assert!(
        result.status.success(),
        "{}{}",
        text(&result.stdout),
        text(&result.stderr)
    );

    // The validator does look: left at 3.0.0, webhooks and type lists are refused.
    let old = dir.path().join("old.json");
    merge_ok(&fixture(), &old, &[]);
    assert!(
        !validate(&old).status.success(),
        "a 3.0.0 document with webhooks passed validation"
    );
}

#[test]
fn server_document_is_valid_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("server.json");
    // Without --dev the document lists fewer routes; it must be valid as well.
    let without_dev = dir.path().join("server-without-dev.json");
    let plain = scmarket_ws::apidoc::server_document(false);
    std::fs::write(&without_dev, serde_json::to_string_pretty(&plain).unwrap()).unwrap();
    let result = validate(&without_dev);
    assert!(
        result.status.success(),
        "{}{}",
        text(&result.stdout),
        text(&result.stderr)
    );
    let doc = scmarket_ws::apidoc::server_document(true);
    std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let result = validate(&out);
    assert!(
        result.status.success(),
        "{}{}",
        text(&result.stdout),
        text(&result.stderr)
    );
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/api/chats",
        "/api/chats/{chat_id}",
        "/api/chats/{chat_id}/messages",
        "/api/dev/login",
        "/api/dev/chats",
        "/api/dev/ban",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["webhooks"]["serverMessage"].is_object());
    assert!(doc["x-websocket"].is_object());
    let ws = spec(&["check", s(&out)]);
    assert_eq!(
        code(&ws),
        0,
        "the server's websocket part drifted: {}",
        text(&ws.stdout)
    );
}

#[test]
fn spec_websocket_is_valid_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ws.json");
    assert_eq!(code(&spec(&["websocket", "-o", s(&out)])), 0);
    let result = validate(&out);
    assert!(
        result.status.success(),
        "{}{}",
        text(&result.stdout),
        text(&result.stderr)
    );
}

/// The docs page's script, run by Node against a minimal stand-in for the DOM and `fetch`
/// serving `server_document(true)`: it must render every path, webhook, schema and event without
/// throwing. (No browser on CI machines; this catches the script's own errors.)
#[test]
fn docs_page_renders_the_server_document() {
    let page = scmarket_ws::apidoc::docs_page();
    let start = page.find("<script>").expect("inline script") + "<script>".len();
    let end = page.rfind("</script>").expect("script end");
    let script = &page[start..end];
    let doc = serde_json::to_string(&scmarket_ws::apidoc::server_document(true)).unwrap();
    let harness = format!(
        r#"
class Node {{
  constructor(tag) {{ this.tag = tag; this.children = []; this.attrs = {{}}; this.style = {{}}; this.listeners = {{}}; }}
  setAttribute(k, v) {{ this.attrs[k] = String(v); }}
  getAttribute(k) {{ return this.attrs[k]; }}
  // As the DOM does: anything that is not a node is inserted as its string form.
  append(...cs) {{ for (const c of cs) this.children.push(c instanceof Node ? c : String(c)); }}
  replaceChildren(...cs) {{ this.children = []; this.append(...cs); }}
  addEventListener(ev, f) {{ this.listeners[ev] = f; }}
  scrollIntoView() {{}}
  set textContent(t) {{ this.children = [String(t)]; }}
  get text() {{ return this.children.map((c) => c instanceof Node ? c.text : c).join(" "); }}
}}
const byId = {{}};
const document = {{
  title: "",
  createElement: (t) => new Node(t),
  getElementById: (id) => (byId[id] = byId[id] || new Node("div")),
  querySelectorAll: () => [],
}};
const window = {{ addEventListener() {{}} }};
const location = {{ hash: "" }};
let requested = null;
const fetch = (url) => {{ requested = url; return Promise.resolve({{ ok: true, json: () => Promise.resolve({doc}) }}); }};
{script}
setTimeout(() => {{
  const out = byId.main ? byId.main.text : "";
  const sub = byId.subtitle ? byId.subtitle.text : "";
  console.log(JSON.stringify({{ requested, out, sub, title: document.title }}));
}}, 50);
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let js = dir.path().join("page.js");
    std::fs::write(&js, harness).unwrap();
    let out = Command::new("node")
        .arg(&js)
        .output()
        .expect("node is on PATH (Node.js is needed for the interop tests too)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("the harness prints JSON");
    assert_eq!(result["requested"], "/openapi.json");
    let rendered = result["out"].as_str().unwrap();
    assert!(
        !result["sub"].as_str().unwrap().contains("Cannot load"),
        "{}",
        result["sub"]
    );
    for bad in ["[object", "undefined"] {
        assert!(
            !rendered.contains(bad),
            "the page shows {bad:?}: {rendered}"
        );
    }
    for needle in [
        "/api/chats/{chat_id}/messages",
        "/healthz",
        "serverMessage",
        "clientJoinRoom",
        "WebSocketMessage",
        "ChatDetail",
        "scmarket.access",
        "Chat not found",
    ] {
        assert!(rendered.contains(needle), "the page does not show {needle}");
    }
}
