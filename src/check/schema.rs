//! A JSON Schema 2020-12 validator for the keywords the generated protocol schemas use (see
//! `apidoc::websocket::schemas`): enough to hold a received `serverMessage` against the schema
//! generated from `src/protocol.rs`. A keyword it does not know is reported as an error, never
//! skipped, so a schema that grows past this validator fails the check loudly instead of
//! passing unchecked payloads.

use serde_json::Value;
use uuid::Uuid;

/// Keywords that only describe, and do not constrain.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$schema",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Every place `value` breaks `schema`, as `path: problem`; empty when it validates.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "$", &mut errors);
    errors
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    let actual = type_name(value);
    actual == name || (name == "number" && actual == "integer")
}

fn check(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let map = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{at}: no value is allowed here"));
            return;
        }
        Value::Object(map) => map,
        _ => {
            errors.push(format!("{at}: the schema is not an object"));
            return;
        }
    };
    for (keyword, rule) in map {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "type" => {
                let names: Vec<&str> = match rule {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !names.iter().any(|n| has_type(value, n)) {
                    errors.push(format!(
                        "{at}: is {}, expected {}",
                        type_name(value),
                        names.join(" or ")
                    ));
                }
            }
            "properties" => {
                if let (Some(props), Value::Object(obj)) = (rule.as_object(), value) {
                    for (name, sub) in props {
                        if let Some(v) = obj.get(name) {
                            check(sub, v, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "required" => {
                if let (Some(names), Value::Object(obj)) = (rule.as_array(), value) {
                    for name in names.iter().filter_map(Value::as_str) {
                        if !obj.contains_key(name) {
                            errors.push(format!("{at}: the key {name:?} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Value::Object(obj) = value {
                    let known = map.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        check(rule, v, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "format" => {
                if let (Some(format), Value::String(text)) = (rule.as_str(), value) {
                    let ok = match format {
                        "uuid" => Uuid::try_parse(text).is_ok(),
                        "date-time" => time::OffsetDateTime::parse(
                            text,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .is_ok(),
                        other => {
                            errors.push(format!("{at}: unsupported format {other:?}"));
                            true
                        }
                    };
                    if !ok {
                        errors.push(format!("{at}: {text:?} is not a {format}"));
                    }
                }
            }
            "maxLength" | "minLength" => {
                if let (Some(limit), Value::String(text)) = (rule.as_u64(), value) {
                    let length = text.chars().count() as u64;
                    let broken = if keyword == "maxLength" {
                        length > limit
                    } else {
                        length < limit
                    };
                    if broken {
                        errors.push(format!(
                            "{at}: {length} characters breaks {keyword} {limit}"
                        ));
                    }
                }
            }
            "enum" => {
                if let Some(options) = rule.as_array()
                    && !options.contains(value)
                {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    errors.push(format!("{at}: {value} is not {rule}"));
                }
            }
            "anyOf" | "oneOf" => {
                let options = rule.as_array().map(Vec::as_slice).unwrap_or_default();
                let matching = options
                    .iter()
                    .filter(|option| validate(option, value).is_empty())
                    .count();
                let ok = if keyword == "anyOf" {
                    matching >= 1
                } else {
                    matching == 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: matches {matching} of the {} schemas of {keyword}",
                        options.len()
                    ));
                }
            }
            other => errors.push(format!(
                "{at}: the schema uses {other:?}, which this validator does not know"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message_schema() -> Value {
        crate::apidoc::websocket::schemas()[crate::apidoc::websocket::MESSAGE_SCHEMA].clone()
    }

    fn good() -> Value {
        json!({
            "message_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "content": "hi",
            "author": "alice",
            "chat_id": "5c0000c4-0000-4000-8000-000000000003",
            "timestamp": "2026-01-02T03:04:05.678Z"
        })
    }

    #[test]
    fn the_generated_message_schema_uses_only_known_keywords() {
        assert_eq!(validate(&message_schema(), &good()), Vec::<String>::new());
        let mut system = good();
        system["author"] = Value::Null;
        assert_eq!(validate(&message_schema(), &system), Vec::<String>::new());
    }

    #[test]
    fn what_production_documents_but_does_not_send_is_refused() {
        // The backend's hand-written docs: a numeric timestamp, an author id, no message_id.
        let claimed = json!({
            "content": "hi",
            "author": 17,
            "chat_id": "5c0000c4-0000-4000-8000-000000000003",
            "timestamp": 1767323045678u64,
            "type": "message"
        });
        let errors = validate(&message_schema(), &claimed);
        let text = errors.join("\n");
        assert!(text.contains("\"message_id\" is missing"), "{text}");
        assert!(text.contains("$.author: is integer"), "{text}");
        assert!(text.contains("$.timestamp: is integer"), "{text}");
        let mut long = good();
        long["content"] = "x".repeat(1001).into();
        long["message_id"] = "not-a-uuid".into();
        let text = validate(&message_schema(), &long).join("\n");
        assert!(text.contains("breaks maxLength 1000"), "{text}");
        assert!(text.contains("is not a uuid"), "{text}");
    }

    #[test]
    fn unknown_keywords_are_errors() {
        let errors = validate(&json!({"pattern": "^a"}), &json!("a"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("\"pattern\""));
    }
}
