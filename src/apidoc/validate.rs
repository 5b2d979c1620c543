//! Checks of a finished document that need no OpenAPI validator: every `$ref` must point at
//! something inside the document.

use std::fmt;

use serde_json::Value;

use super::merge::escape_pointer;

/// Values that are payload data: a `$ref` key inside an example is text, not a reference.
const DATA_KEYS: &[&str] = &["example", "examples", "default", "enum", "const"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedRef {
    /// JSON pointer of the `$ref` member itself, e.g. `/paths/~1chats/get/.../$ref`.
    pub location: String,
    /// The reference as written.
    pub target: String,
    pub reason: &'static str,
}

impl fmt::Display for UnresolvedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: \"{}\" {}", self.location, self.target, self.reason)
    }
}

/// Every `$ref` of `doc` that does not resolve within `doc`, in document order.
pub fn unresolved_refs(doc: &Value) -> Vec<UnresolvedRef> {
    let mut found = Vec::new();
    walk(doc, doc, &mut String::new(), &mut found);
    found
}

fn walk(root: &Value, value: &Value, at: &mut String, found: &mut Vec<UnresolvedRef>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&escape_pointer(key));
                if key == "$ref" {
                    if let Value::String(target) = child
                        && let Some(reason) = problem(root, target)
                    {
                        found.push(UnresolvedRef {
                            location: at.clone(),
                            target: target.clone(),
                            reason,
                        });
                    }
                } else if !DATA_KEYS.contains(&key.as_str()) {
                    walk(root, child, at, found);
                }
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                walk(root, child, at, found);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

fn problem(root: &Value, target: &str) -> Option<&'static str> {
    let Some(fragment) = target.strip_prefix('#') else {
        return Some("is not a local reference (#/...); the document must be self-contained");
    };
    let Some(pointer) = percent_decode(fragment) else {
        return Some("is not a valid URI fragment");
    };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Some("is not a JSON pointer (#/...)");
    }
    match root.pointer(&pointer) {
        Some(_) => None,
        None => Some("points at nothing in this document"),
    }
}

/// A `$ref` is a URI: its fragment may percent-encode characters such as `{` or a space.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_dangling_ref_with_its_location() {
        let doc = json!({
            "components": {"schemas": {"A~B": {}, "Ok": {"$ref": "#/components/schemas/A~0B"}}},
            "paths": {"/x/{id}": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"items": [{"$ref": "#/components/schemas/Missing"}]}}}}}}}},
            "x": {"example": {"$ref": "#/not/checked"}, "other": {"$ref": "other.json#/A"}},
        });
        let found: Vec<String> = unresolved_refs(&doc)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with(
            "/paths/~1x~1{id}/get/responses/200/content/application~1json/schema/items/0/$ref: \"#/components/schemas/Missing\""
        ), "{found:?}");
        assert!(found[1].contains("not a local reference"), "{found:?}");
    }
}
