//! Engine.IO v4 and Socket.IO v5 packets as text, both directions.
//!
//! Kept apart from the transports so the wire format can be tested without sockets, and so the
//! load test pays for exactly one allocation per outgoing event.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownEngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownSocketType(char),
    #[error("malformed Socket.IO packet: {0}")]
    Malformed(&'static str),
    #[error("invalid JSON in packet: {0}")]
    Json(String),
    #[error("invalid base64 in a binary polling packet")]
    Base64,
}

/// The answer to the first engine request: `0{"sid":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    pub sid: String,
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds.
    pub ping_interval: u64,
    /// Milliseconds.
    pub ping_timeout: u64,
    /// Bytes; socket.io servers before 4.x do not send it.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

/// One Engine.IO packet as read from a text frame or a polling payload item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    Open(&'a str),
    Close,
    Ping(&'a str),
    Pong(&'a str),
    /// A Socket.IO packet in text form.
    Message(&'a str),
    Upgrade,
    Noop,
}

pub fn decode_engine(text: &str) -> Result<EnginePacket<'_>, PacketError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let data = &text[kind.len_utf8()..];
    Ok(match kind {
        '0' => EnginePacket::Open(data),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(data),
        '3' => EnginePacket::Pong(data),
        '4' => EnginePacket::Message(data),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        other => return Err(PacketError::UnknownEngineType(other)),
    })
}

pub fn decode_handshake(data: &str) -> Result<Handshake, PacketError> {
    serde_json::from_str(data).map_err(|e| PacketError::Json(e.to_string()))
}

/// One item of a polling payload: packets are separated by U+001E, binary ones sent as `b<base64>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadItem<'a> {
    Text(&'a str),
    Binary(Vec<u8>),
}

pub fn decode_payload(body: &str) -> impl Iterator<Item = Result<PayloadItem<'_>, PacketError>> {
    body.split('\u{1e}')
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(PayloadItem::Binary)
                .map_err(|_| PacketError::Base64),
            None => Ok(PayloadItem::Text(p)),
        })
}

pub fn encode_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push('\u{1e}');
        }
        out.push_str(p.as_ref());
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl SocketKind {
    fn code(self) -> char {
        match self {
            SocketKind::Connect => '0',
            SocketKind::Disconnect => '1',
            SocketKind::Event => '2',
            SocketKind::Ack => '3',
            SocketKind::ConnectError => '4',
            SocketKind::BinaryEvent => '5',
            SocketKind::BinaryAck => '6',
        }
    }
}

/// A decoded Socket.IO packet. `attachments` binary frames follow a binary event or ack.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketPacket {
    pub kind: SocketKind,
    pub namespace: String,
    pub attachments: usize,
    pub id: Option<u64>,
    pub data: Option<Value>,
}

pub fn decode_socket(text: &str) -> Result<SocketPacket, PacketError> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        None => return Err(PacketError::Empty),
        Some(b'0') => SocketKind::Connect,
        Some(b'1') => SocketKind::Disconnect,
        Some(b'2') => SocketKind::Event,
        Some(b'3') => SocketKind::Ack,
        Some(b'4') => SocketKind::ConnectError,
        Some(b'5') => SocketKind::BinaryEvent,
        Some(b'6') => SocketKind::BinaryAck,
        Some(_) => {
            let c = text.chars().next().unwrap_or('?');
            return Err(PacketError::UnknownSocketType(c));
        }
    };
    let mut i = 1;
    let mut attachments = 0;
    if matches!(kind, SocketKind::BinaryEvent | SocketKind::BinaryAck) {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(PacketError::Malformed(
                "binary packet without attachment count",
            ));
        }
        attachments = text[start..i]
            .parse()
            .map_err(|_| PacketError::Malformed("attachment count"))?;
        i += 1;
    }
    let mut namespace = String::from("/");
    if bytes.get(i) == Some(&b'/') {
        let end = text[i..].find(',').map(|n| i + n).unwrap_or(text.len());
        namespace = text[i..end].to_string();
        i = (end + 1).min(text.len());
    }
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let id = if i > start {
        Some(
            text[start..i]
                .parse()
                .map_err(|_| PacketError::Malformed("ack id out of range"))?,
        )
    } else {
        None
    };
    let data = if i < text.len() {
        Some(serde_json::from_str(&text[i..]).map_err(|e| PacketError::Json(e.to_string()))?)
    } else {
        None
    };
    Ok(SocketPacket {
        kind,
        namespace,
        attachments,
        id,
        data,
    })
}

/// Engine message text (`4` + Socket.IO packet) for the default namespace.
fn engine_message(kind: SocketKind, id: Option<u64>) -> String {
    let mut out = String::with_capacity(64);
    out.push('4');
    out.push(kind.code());
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    out
}

/// `40` or `40{auth}`: the namespace CONNECT.
pub fn connect(auth: Option<&Value>) -> String {
    let mut out = engine_message(SocketKind::Connect, None);
    if let Some(auth) = auth {
        out.push_str(&auth.to_string());
    }
    out
}

/// `41`: leave the namespace.
pub fn disconnect() -> String {
    engine_message(SocketKind::Disconnect, None)
}

/// `42[id]["event",args...]`.
pub fn event(name: &str, args: &[Value], id: Option<u64>) -> String {
    let mut out = engine_message(SocketKind::Event, id);
    out.push('[');
    out.push_str(&Value::from(name).to_string());
    for a in args {
        out.push(',');
        out.push_str(&a.to_string());
    }
    out.push(']');
    out
}

/// `43id[args...]`: our answer to an acknowledgement the server asked for.
pub fn ack(id: u64, args: &[Value]) -> String {
    let mut out = engine_message(SocketKind::Ack, Some(id));
    out.push_str(&Value::from(args.to_vec()).to_string());
    out
}

/// Replace `{"_placeholder":true,"num":N}` with `{"_binary":"<base64>"}` once the attachments
/// have arrived, so binary data survives as JSON for display and NDJSON.
pub fn fill_placeholders(value: &mut Value, attachments: &[Vec<u8>]) {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| fill_placeholders(v, attachments)),
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                let num = map.get("num").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let encoded = usize::try_from(num)
                    .ok()
                    .and_then(|n| attachments.get(n))
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b));
                if let Some(encoded) = encoded {
                    map.clear();
                    map.insert("_binary".into(), Value::String(encoded));
                }
            } else {
                map.values_mut()
                    .for_each(|v| fill_placeholders(v, attachments));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(decode_engine("2").unwrap(), EnginePacket::Ping(""));
        assert_eq!(
            decode_engine("3probe").unwrap(),
            EnginePacket::Pong("probe")
        );
        assert_eq!(
            decode_engine("42[\"a\"]").unwrap(),
            EnginePacket::Message("2[\"a\"]")
        );
        assert_eq!(decode_engine("6").unwrap(), EnginePacket::Noop);
        assert_eq!(decode_engine(""), Err(PacketError::Empty));
        assert_eq!(decode_engine("9"), Err(PacketError::UnknownEngineType('9')));
    }

    #[test]
    fn handshake_from_socket_io_4_8() {
        let text = r#"0{"sid":"kwUq2rE76GPkgMcPAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let EnginePacket::Open(data) = decode_engine(text).unwrap() else {
            panic!("not an open packet")
        };
        let h = decode_handshake(data).unwrap();
        assert_eq!(h.sid, "kwUq2rE76GPkgMcPAAAA");
        assert_eq!(h.upgrades, vec!["websocket"]);
        assert_eq!((h.ping_interval, h.ping_timeout), (25000, 20000));
        assert_eq!(h.max_payload, Some(1_000_000));
        assert!(decode_handshake("{}").is_err());
    }

    #[test]
    fn polling_payload_round_trip() {
        let body = encode_payload(&["40", "42[\"a\"]"]);
        assert_eq!(body, "40\u{1e}42[\"a\"]");
        let items: Vec<_> = decode_payload(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            items,
            vec![PayloadItem::Text("40"), PayloadItem::Text("42[\"a\"]")]
        );
        let items: Vec<_> = decode_payload("bAQID\u{1e}6")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            items,
            vec![PayloadItem::Binary(vec![1, 2, 3]), PayloadItem::Text("6")]
        );
        assert!(decode_payload("b!!").next().unwrap().is_err());
    }

    #[test]
    fn socket_packets() {
        let p = decode_socket(r#"0{"sid":"abc"}"#).unwrap();
        assert_eq!(
            (p.kind, p.namespace.as_str(), p.id),
            (SocketKind::Connect, "/", None)
        );
        assert_eq!(p.data, Some(json!({"sid": "abc"})));

        let p = decode_socket(r#"2["serverMessage",{"a":1}]"#).unwrap();
        assert_eq!(p.kind, SocketKind::Event);
        assert_eq!(p.data, Some(json!(["serverMessage", {"a": 1}])));

        let p = decode_socket(r#"312[{"ok":true}]"#).unwrap();
        assert_eq!((p.kind, p.id), (SocketKind::Ack, Some(12)));

        let p = decode_socket(r#"2/admin,7["x"]"#).unwrap();
        assert_eq!((p.namespace.as_str(), p.id), ("/admin", Some(7)));

        let p = decode_socket(r#"51-["bin",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!((p.kind, p.attachments), (SocketKind::BinaryEvent, 1));

        let p = decode_socket(r#"4{"message":"not authorized"}"#).unwrap();
        assert_eq!(p.kind, SocketKind::ConnectError);

        assert_eq!(decode_socket("1").unwrap().kind, SocketKind::Disconnect);
        assert!(decode_socket("5[]").is_err());
        assert!(decode_socket("2[").is_err());
        assert!(decode_socket("299999999999999999999999[]").is_err());
        assert!(decode_socket("x").is_err());
    }

    #[test]
    fn encoders() {
        assert_eq!(connect(None), "40");
        assert_eq!(connect(Some(&json!({"token": "t"}))), r#"40{"token":"t"}"#);
        assert_eq!(disconnect(), "41");
        assert_eq!(
            event("clientJoinRoom", &[json!({"chat_id": "c"})], Some(3)),
            r#"423["clientJoinRoom",{"chat_id":"c"}]"#
        );
        assert_eq!(event("a\"b", &[], None), r#"42["a\"b"]"#);
        assert_eq!(ack(5, &[json!(1), json!("x")]), r#"435[1,"x"]"#);
        // What we encode, we decode.
        let p = decode_socket(&event("e", &[json!([1, 2])], Some(9))[1..]).unwrap();
        assert_eq!((p.id, p.data), (Some(9), Some(json!(["e", [1, 2]]))));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "é", "4é", "5é-[]", "51-", "2/é,[]", "2/", "3é", "0{", "6-1[]", "2999",
        ] {
            let _ = decode_engine(text);
            let _ = decode_socket(text);
            if let Some(rest) = text.get(1..) {
                let _ = decode_socket(rest);
            }
        }
        assert!(decode_socket("2/é,[\"x\"]").is_ok());
        assert!(decode_engine("é").is_err());
    }

    #[test]
    fn placeholders_become_base64() {
        let mut v = json!(["bin", {"file": {"_placeholder": true, "num": 0}}, {"_placeholder": true, "num": 5}]);
        fill_placeholders(&mut v, &[vec![1, 2, 3, 4]]);
        assert_eq!(
            v,
            json!(["bin", {"file": {"_binary": "AQIDBA=="}}, {"_placeholder": true, "num": 5}])
        );
    }
}
