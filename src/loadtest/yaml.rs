//! A YAML document as a tree of located nodes, and the diagnostics that point into it.
//!
//! Scenarios are not deserialized straight into typed structs: serde's derived errors cannot
//! list the valid fields of a step or say "a loop takes count or duration, not both", and
//! `--set` overrides must edit the document before it is typed. So the file is read once into
//! this tree (every node remembers its line and column) and `scenario.rs` types it by hand.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node came from: a position in the file, or a command-line override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// 1-based line and column in the scenario file.
    File { line: u64, column: u64 },
    /// The override that produced the value, e.g. `--set phases.0.vus=10`.
    Arg(String),
}

impl Loc {
    fn from_saphyr(location: serde_saphyr::Location) -> Loc {
        Loc::File {
            line: location.line(),
            column: location.column(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its own position, so "unknown field" errors point at the key.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

impl Value {
    /// The YAML kind in words, for "expected a mapping, found a string" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The value of key `name` when this node is a mapping.
    pub fn get(&self, name: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            loc: Loc::from_saphyr(spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        // Integers beyond i64 are far outside any sane scenario value; keeping them as a float
        // lets validation say "too large" instead of failing the parse.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((
                Key {
                    name: key.value.0,
                    loc: Loc::from_saphyr(key.referenced),
                },
                value,
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key written as any scalar (`0: x` is legal YAML), kept as its text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// One problem found in a scenario, located in its file (or on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
}

/// Every problem found in one scenario file, rendered as `file:line:column: message` lines
/// with the offending source line underneath, the way compilers do it.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &d.loc {
                Loc::File { line, column } => {
                    write!(f, "{}:{}:{}: {}", self.file, line, column, d.message)?;
                    let text = usize::try_from(*line)
                        .ok()
                        .and_then(|l| l.checked_sub(1))
                        .and_then(|l| self.source.lines().nth(l));
                    if let Some(text) = text {
                        let gutter = line.to_string();
                        let pad = " ".repeat(gutter.len());
                        let caret =
                            " ".repeat(usize::try_from(column.saturating_sub(1)).unwrap_or(0));
                        write!(f, "\n {pad} |\n {gutter} | {text}\n {pad} | {caret}^")?;
                    }
                }
                Loc::Arg(arg) => write!(f, "{}: {}: {}", self.file, arg, d.message)?,
            }
        }
        if self.items.len() > 1 {
            write!(f, "\n{} problems found in {}", self.items.len(), self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// YAML 1.2 booleans only: under YAML 1.1 rules `name: n` or `- y` would silently become
/// `false`/`true`, which no scenario author means.
fn read(text: &str) -> Result<Option<Node>, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, serde_saphyr::options! { strict_booleans: true })
}

/// Read a YAML document into a located tree. A syntax error becomes a located diagnostic.
pub fn parse(source: &str) -> Result<Node, Diagnostic> {
    match read(source) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Err(Diagnostic {
            loc: Loc::File { line: 1, column: 1 },
            message:
                "the file is empty: a scenario needs at least `name`, `phases` and `scenarios`"
                    .into(),
        }),
        Err(e) => {
            let loc = e
                .location()
                .filter(|l| l.line() > 0)
                .map(Loc::from_saphyr)
                .unwrap_or(Loc::File { line: 1, column: 1 });
            Err(Diagnostic {
                loc,
                message: format!("not valid YAML: {}", plain_message(&e)),
            })
        }
    }
}

/// Parse the right-hand side of `--set key=value` as a YAML value, located at the argument.
pub fn parse_override(text: &str, arg: &str) -> Result<Node, String> {
    let node = match read(text) {
        Ok(Some(node)) => node,
        Ok(None) => Node {
            loc: Loc::Arg(arg.into()),
            value: Value::Null,
        },
        Err(e) => {
            return Err(format!(
                "the value is not valid YAML: {}",
                plain_message(&e)
            ));
        }
    };
    Ok(relocate(node, &Loc::Arg(arg.into())))
}

fn relocate(node: Node, loc: &Loc) -> Node {
    let value = match node.value {
        Value::Seq(items) => Value::Seq(items.into_iter().map(|n| relocate(n, loc)).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    (
                        Key {
                            name: k.name,
                            loc: loc.clone(),
                        },
                        relocate(v, loc),
                    )
                })
                .collect(),
        ),
        other => other,
    };
    Node {
        loc: loc.clone(),
        value,
    }
}

/// The parser's message without its own snippet and position, which the caller renders.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let mut text = e.without_snippet().to_string();
    // Advice meant for the programmer embedding the parser, not for a scenario author.
    if let Some(i) = text.find(", set DuplicateKeyPolicy") {
        text.truncate(i);
    }
    // The message may already end in " at line X column Y"; the diagnostic shows the position.
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Replace (or add) the value at a dotted path: `phases.0.vus`, `setup.rooms`, `name`.
/// Numeric segments index lists; a missing key is added to its mapping so overrides can set
/// optional fields the file left out.
pub fn set_path(root: &mut Node, path: &str, value: Node) -> Result<(), String> {
    if path.is_empty() {
        return Err("the key is empty: write --set key=value, e.g. --set phases.0.vus=10".into());
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut node = root;
    let mut walked = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if segment.is_empty() {
            return Err(format!("`{path}` has an empty segment"));
        }
        let here = if walked.is_empty() {
            "the document".to_owned()
        } else {
            format!("`{walked}`")
        };
        node = match &mut node.value {
            Value::Map(entries) => {
                let pos = entries.iter().position(|(k, _)| k.name == *segment);
                let pos = match pos {
                    Some(p) => p,
                    None if last => {
                        entries.push((
                            Key {
                                name: (*segment).to_owned(),
                                loc: value.loc.clone(),
                            },
                            value,
                        ));
                        return Ok(());
                    }
                    None => {
                        let keys: Vec<&str> =
                            entries.iter().map(|(k, _)| k.name.as_str()).collect();
                        return Err(format!(
                            "{here} has no key `{segment}` (it has: {})",
                            keys.join(", ")
                        ));
                    }
                };
                &mut entries[pos].1
            }
            Value::Seq(items) => {
                let len = items.len();
                let index: usize = segment.parse().map_err(|_| {
                    format!(
                        "{here} is a list: index it with a number (0 to {}), not `{segment}`",
                        len.saturating_sub(1)
                    )
                })?;
                match items.get_mut(index) {
                    Some(item) => item,
                    None => {
                        return Err(format!(
                            "{here} has {len} item(s), so index {index} does not exist"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "{here} is {}, so it has no `{segment}` inside",
                    other.kind()
                ));
            }
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_line_and_column() {
        let doc = parse("name: x\nphases:\n  - { duration: 10s, vus: 5 }\n").expect("parses");
        let phases = doc.get("phases").expect("phases");
        assert_eq!(phases.loc, Loc::File { line: 3, column: 3 });
        let Value::Seq(items) = &phases.value else {
            panic!("a list")
        };
        let vus = items[0].get("vus").expect("vus");
        assert!(matches!(vus.value, Value::Int(5)));
        assert_eq!(
            vus.loc,
            Loc::File {
                line: 3,
                column: 27
            }
        );
        let Value::Map(entries) = &items[0].value else {
            panic!("a map")
        };
        assert_eq!(
            entries[1].0.loc,
            Loc::File {
                line: 3,
                column: 22
            }
        );
    }

    #[test]
    fn duplicate_keys_are_refused_in_plain_words() {
        let err = parse("name: a\nname: b\n").expect_err("duplicate");
        assert_eq!(err.loc, Loc::File { line: 2, column: 1 });
        assert_eq!(err.message, "not valid YAML: duplicate mapping key: name");
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let doc = parse("name: n\nn: y\nflag: true\n").expect("parses");
        assert!(matches!(&doc.get("name").map(|n| &n.value), Some(Value::Str(s)) if s == "n"));
        assert!(matches!(&doc.get("n").map(|n| &n.value), Some(Value::Str(s)) if s == "y"));
        assert!(matches!(
            doc.get("flag").map(|n| &n.value),
            Some(Value::Bool(true))
        ));
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("name: x\nphases: [a, b\n").expect_err("unclosed list");
        assert!(
            matches!(err.loc, Loc::File { line, .. } if line >= 2),
            "{err:?}"
        );
        assert!(err.message.starts_with("not valid YAML"), "{}", err.message);
    }

    #[test]
    fn set_path_replaces_indexes_and_adds() {
        let mut doc = parse("name: x\nphases:\n  - { duration: 10s, vus: 5 }\n").expect("parses");
        let ten = parse_override("10", "--set phases.0.vus=10").expect("value");
        set_path(&mut doc, "phases.0.vus", ten).expect("set");
        let vus = doc.get("phases").and_then(|p| match &p.value {
            Value::Seq(items) => items[0].get("vus").cloned(),
            _ => None,
        });
        assert!(matches!(vus.map(|n| n.value), Some(Value::Int(10))));

        let path = parse_override("/socket", "--set path=/socket").expect("value");
        set_path(&mut doc, "path", path).expect("added");
        assert!(
            matches!(&doc.get("path").map(|n| &n.value), Some(Value::Str(s)) if s == "/socket")
        );

        let err = set_path(
            &mut doc,
            "phases.3.vus",
            Node {
                loc: Loc::Arg("a".into()),
                value: Value::Null,
            },
        )
        .expect_err("out of range");
        assert!(err.contains("has 1 item(s)"), "{err}");
        let err = set_path(
            &mut doc,
            "setup.rooms",
            Node {
                loc: Loc::Arg("a".into()),
                value: Value::Null,
            },
        )
        .expect_err("no setup");
        assert!(err.contains("no key `setup`"), "{err}");
        let err = set_path(
            &mut doc,
            "name.first",
            Node {
                loc: Loc::Arg("a".into()),
                value: Value::Null,
            },
        )
        .expect_err("scalar");
        assert!(err.contains("is a string"), "{err}");
    }

    #[test]
    fn diagnostics_render_file_position_and_snippet() {
        let d = Diagnostics {
            file: "s.yaml".into(),
            source: "name: x\nphases: []\n".into(),
            items: vec![Diagnostic {
                loc: Loc::File { line: 2, column: 9 },
                message: "`phases` is empty".into(),
            }],
        };
        let text = d.to_string();
        assert!(text.starts_with("s.yaml:2:9: `phases` is empty"), "{text}");
        assert!(text.contains(" 2 | phases: []\n   |         ^"), "{text}");
    }
}
