//! Raising an OpenAPI 3.0 document to 3.1: the schema keywords whose meaning changed.
//!
//! 3.1 schemas are JSON Schema 2020-12, which has no `nullable` and takes numeric
//! `exclusiveMinimum`/`exclusiveMaximum`. Only those are rewritten; everything else that 3.0
//! allows is still valid 3.1.

use serde_json::{Map, Value, json};

/// Keys whose values are data (examples, defaults, enumerations), never schemas: a `nullable`
/// inside them is somebody's payload and must not be rewritten.
const DATA_KEYS: &[&str] = &["example", "examples", "default", "enum", "const"];

/// Keys whose values map free names (property names, schema names) to schemas: a property
/// called `example` is a schema, not data.
const NAME_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "schemas",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Annotations that stay on the outside when a nullable `$ref`/`allOf` is wrapped in `anyOf`.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "externalDocs",
    "xml",
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    pub from: String,
    pub to: String,
    /// Schemas that had `nullable: true` and now say `null` the 3.1 way.
    pub nullable_converted: usize,
    /// Boolean `exclusiveMinimum`/`exclusiveMaximum` turned into numbers.
    pub exclusive_converted: usize,
}

/// Set `openapi` to `version` and convert the document's schemas.
pub fn upgrade(doc: &mut Value, version: &str) -> UpgradeReport {
    let mut report = UpgradeReport {
        to: version.to_string(),
        ..Default::default()
    };
    if let Some(root) = doc.as_object_mut() {
        report.from = root
            .get("openapi")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        root.insert("openapi".into(), Value::String(version.to_string()));
        for (key, value) in root.iter_mut() {
            if key.starts_with("x-") {
                continue;
            }
            walk(value, false, &mut report);
        }
    }
    report
}

fn walk(value: &mut Value, is_name_map: bool, report: &mut UpgradeReport) {
    match value {
        Value::Array(items) => {
            for item in items {
                walk(item, false, report);
            }
        }
        Value::Object(map) => {
            if is_name_map {
                for child in map.values_mut() {
                    walk(child, false, report);
                }
                return;
            }
            convert_schema(map, report);
            for (key, child) in map.iter_mut() {
                if DATA_KEYS.contains(&key.as_str()) || key.starts_with("x-") {
                    continue;
                }
                walk(child, NAME_MAPS.contains(&key.as_str()), report);
            }
        }
        _ => {}
    }
}

fn convert_schema(map: &mut Map<String, Value>, report: &mut UpgradeReport) {
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = map.get(flag).cloned() {
            map.remove(flag);
            report.exclusive_converted += 1;
            if exclusive && let Some(limit) = map.remove(bound) {
                map.insert(flag.into(), limit);
            }
        }
    }

    let Some(Value::Bool(nullable)) = map.get("nullable").cloned() else {
        return;
    };
    map.remove("nullable");
    if !nullable {
        return;
    }
    report.nullable_converted += 1;
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(json!("null"));
            }
        }
        _ => {
            // No type: a `$ref` or a composition. 3.1 keeps siblings of `$ref`, but "or null"
            // cannot be said next to it; it takes an `anyOf` with a null branch.
            if ["$ref", "allOf", "anyOf", "oneOf"]
                .iter()
                .any(|k| map.contains_key(*k))
            {
                wrap_in_any_of(map);
            }
            // Without type or composition the schema already admits null.
            return;
        }
    }
    // An enumeration admits only its members: null must be one of them.
    if let Some(Value::Array(members)) = map.get_mut("enum")
        && !members.iter().any(Value::is_null)
    {
        members.push(Value::Null);
    }
}

fn wrap_in_any_of(map: &mut Map<String, Value>) {
    let mut outer = Map::new();
    let mut inner = Map::new();
    for (key, value) in std::mem::take(map) {
        if ANNOTATIONS.contains(&key.as_str()) {
            outer.insert(key, value);
        } else {
            inner.insert(key, value);
        }
    }
    // TSOA writes a nullable reference as `allOf: [{$ref}]`; the single branch is the schema.
    let inner = match inner.get("allOf") {
        Some(Value::Array(branches)) if inner.len() == 1 && branches.len() == 1 => {
            branches[0].clone()
        }
        _ => Value::Object(inner),
    };
    outer.insert("anyOf".into(), json!([inner, {"type": "null"}]));
    *map = outer;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(schema: Value) -> Value {
        let mut doc = json!({"openapi": "3.0.0", "components": {"schemas": {"S": schema}}});
        upgrade(&mut doc, "3.1.0");
        assert_eq!(doc["openapi"], "3.1.0");
        doc["components"]["schemas"]["S"].take()
    }

    #[test]
    fn nullable_type_becomes_a_type_list() {
        assert_eq!(
            up(json!({"type": "string", "format": "date-time", "nullable": true})),
            json!({"type": ["string", "null"], "format": "date-time"})
        );
        assert_eq!(
            up(json!({"type": "string", "nullable": false})),
            json!({"type": "string"})
        );
    }

    #[test]
    fn nullable_enum_gains_null() {
        assert_eq!(
            up(json!({"type": "string", "enum": ["a"], "nullable": true})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            up(json!({"type": "string", "enum": ["a", null], "nullable": true})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
    }

    #[test]
    fn nullable_reference_becomes_any_of() {
        assert_eq!(
            up(
                json!({"allOf": [{"$ref": "#/components/schemas/T"}], "nullable": true, "description": "d"})
            ),
            json!({"description": "d", "anyOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]})
        );
    }

    #[test]
    fn nested_schemas_are_converted_but_data_is_not() {
        let s = up(json!({
            "type": "object",
            "properties": {
                "example": {"type": "integer", "nullable": true, "exclusiveMinimum": true, "minimum": 0},
                "list": {"type": "array", "items": {"type": "number", "nullable": true}}
            },
            "example": {"nullable": true},
        }));
        assert_eq!(
            s["properties"]["example"],
            json!({"type": ["integer", "null"], "exclusiveMinimum": 0})
        );
        assert_eq!(
            s["properties"]["list"]["items"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(s["example"], json!({"nullable": true}));
    }
}
