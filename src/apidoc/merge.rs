//! The backend's `mergeWebSocketDocumentation`, with its semantics kept exactly: schemas and
//! webhooks of the websocket side win, `x-websocket` is replaced whole, nothing else is touched.
//! Unlike the backend, it tells what it replaced.

use serde_json::{Map, Value};

use super::document::kind_of;
use super::websocket::{EXTENSION, WebsocketParts};

/// A key the merge gave a new value to. Replacing a key by an equal value is not a conflict, so
/// merging an already merged document again is quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    /// JSON pointer of the replaced key, e.g. `/components/schemas/WebSocketMessage`.
    pub pointer: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MergeReport {
    pub overwritten: Vec<Overwrite>,
    /// Sections the base lacked and the merge created (`/components`, `/webhooks`, ...).
    pub created: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("`{pointer}` is {kind}, expected an object; the merge cannot add to it")]
    NotAnObject { pointer: String, kind: &'static str },
    #[error("the top level is {0}, expected an object")]
    NotADocument(&'static str),
}

/// Merge `parts` into `base` in place. Keys keep their position (serde_json's `preserve_order`
/// map replaces in place and appends new keys, as a JS object spread does).
pub fn merge(base: &mut Value, parts: &WebsocketParts) -> Result<MergeReport, MergeError> {
    let mut report = MergeReport::default();
    let kind = kind_of(base);
    let root = base.as_object_mut().ok_or(MergeError::NotADocument(kind))?;

    let components = section(root, "components", "/components", &mut report)?;
    let schemas = section(components, "schemas", "/components/schemas", &mut report)?;
    put_all(schemas, &parts.schemas, "/components/schemas", &mut report);

    let webhooks = section(root, "webhooks", "/webhooks", &mut report)?;
    put_all(webhooks, &parts.webhooks, "/webhooks", &mut report);

    let pointer = format!("/{EXTENSION}");
    if let Some(old) = root.insert(EXTENSION.to_string(), parts.extension.clone())
        && old != parts.extension
    {
        report.overwritten.push(Overwrite { pointer });
    }
    Ok(report)
}

/// The object under `key`, created empty when missing (the backend's spread of `undefined`).
fn section<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    pointer: &str,
    report: &mut MergeReport,
) -> Result<&'a mut Map<String, Value>, MergeError> {
    if !parent.contains_key(key) {
        report.created.push(pointer.to_string());
    }
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    let kind = kind_of(slot);
    slot.as_object_mut().ok_or_else(|| MergeError::NotAnObject {
        pointer: pointer.to_string(),
        kind,
    })
}

fn put_all(
    target: &mut Map<String, Value>,
    entries: &Map<String, Value>,
    pointer: &str,
    report: &mut MergeReport,
) {
    for (name, value) in entries {
        if let Some(old) = target.insert(name.clone(), value.clone())
            && old != *value
        {
            report.overwritten.push(Overwrite {
                pointer: format!("{pointer}/{}", escape_pointer(name)),
            });
        }
    }
}

/// One JSON pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apidoc::websocket;
    use serde_json::json;

    #[test]
    fn creates_missing_sections_and_keeps_key_order() {
        let mut base = json!({"openapi": "3.1.0", "info": {}, "paths": {}});
        let report = merge(&mut base, &websocket::parts()).unwrap();
        let keys: Vec<_> = base.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "openapi",
                "info",
                "paths",
                "components",
                "webhooks",
                "x-websocket"
            ]
        );
        assert_eq!(
            report.created,
            ["/components", "/components/schemas", "/webhooks"]
        );
        assert!(report.overwritten.is_empty());
    }

    #[test]
    fn reports_changed_keys_only_and_keeps_their_place() {
        let parts = websocket::parts();
        let mut base = json!({
            "openapi": "3.1.0", "info": {},
            "components": {"schemas": {"JoinRoomRequest": {"type": "object"}, "A": {}, "LeaveRoomRequest": parts.schemas["LeaveRoomRequest"].clone()}},
            "x-websocket": {"path": "/socket"},
        });
        let report = merge(&mut base, &parts).unwrap();
        let pointers: Vec<_> = report
            .overwritten
            .iter()
            .map(|o| o.pointer.as_str())
            .collect();
        assert_eq!(
            pointers,
            ["/components/schemas/JoinRoomRequest", "/x-websocket"]
        );
        let names: Vec<_> = base["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            names,
            [
                "JoinRoomRequest",
                "A",
                "LeaveRoomRequest",
                "WebSocketMessage"
            ]
        );
    }

    #[test]
    fn refuses_a_section_that_is_not_an_object() {
        let mut base = json!({"openapi": "3.1.0", "info": {}, "webhooks": []});
        let err = merge(&mut base, &websocket::parts()).unwrap_err();
        assert!(err.to_string().contains("`/webhooks` is a list"), "{err}");
    }
}
