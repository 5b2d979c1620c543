//! `{{vu}}`-style templates: compiled once when the scenario is validated, rendered per use.
//!
//! The runner renders templates for every step of thousands of sessions, so compiling splits
//! the text into literal and variable parts once; rendering is a single pass that appends to a
//! caller-owned buffer. An unknown variable is caught at compile time, before anything connects.

use std::fmt::{self, Write as _};

/// A variable a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The virtual user's number, 0-based, unique within one generator run.
    Vu,
    /// The innermost `loop` iteration, 0-based (0 outside any loop).
    Iteration,
    /// The chat id of the virtual user's room (`setup.rooms`).
    Room,
    /// A token unique to this step execution that the runner can find again in a received
    /// message; delivery latency is matched through it.
    Nonce,
    /// A fresh random UUID v4 per render.
    Uuid,
    /// Unix time in milliseconds at render time.
    Now,
}

impl Var {
    pub const ALL: &'static [Var] = &[
        Var::Vu,
        Var::Iteration,
        Var::Room,
        Var::Nonce,
        Var::Uuid,
        Var::Now,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::Vu => "vu",
            Var::Iteration => "iteration",
            Var::Room => "room",
            Var::Nonce => "nonce",
            Var::Uuid => "uuid",
            Var::Now => "now",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.iter().copied().find(|v| v.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template variable `{{{{{name}}}}}`; available here: {available}")]
    Unknown { name: String, available: String },
    #[error(
        "template variable `{{{{{name}}}}}` is not available here; available here: {available}"
    )]
    NotHere { name: String, available: String },
    #[error("`{{{{` at character {offset} is never closed with `}}}}`")]
    Unclosed { offset: usize },
}

/// The values a render reads. The runner keeps one per session and updates it in place.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub vu: u64,
    pub iteration: u64,
    pub room: &'a str,
    pub nonce: &'a str,
}

impl Template {
    /// Compile `text`, allowing only the variables in `allowed` (setup fields cannot use
    /// `{{room}}` or `{{iteration}}`, for instance).
    pub fn compile(text: &str, allowed: &[Var]) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                return Err(TemplateError::Unclosed {
                    offset: offset + start,
                });
            };
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_owned()));
            }
            let name = rest[start + 2..start + 2 + len].trim();
            let available = || {
                allowed
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let var = Var::from_name(name).ok_or_else(|| TemplateError::Unknown {
                name: name.to_owned(),
                available: available(),
            })?;
            if !allowed.contains(&var) {
                return Err(TemplateError::NotHere {
                    name: name.to_owned(),
                    available: available(),
                });
            }
            parts.push(Part::Var(var));
            let consumed = start + 2 + len + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// A template without variables, for values that are fixed.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Lit(text.to_owned())]
            },
        }
    }

    /// The text when the template has no variables: the runner can skip rendering.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Append the rendered text to `out` (no allocation when `out` has room).
    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    Ok(())
                }
                Part::Var(Var::Vu) => write!(out, "{}", vars.vu),
                Part::Var(Var::Iteration) => write!(out, "{}", vars.iteration),
                Part::Var(Var::Room) => {
                    out.push_str(vars.room);
                    Ok(())
                }
                Part::Var(Var::Nonce) => {
                    out.push_str(vars.nonce);
                    Ok(())
                }
                Part::Var(Var::Uuid) => write!(out, "{}", uuid::Uuid::new_v4()),
                Part::Var(Var::Now) => write!(out, "{}", unix_millis()),
            };
        }
    }

    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }
}

impl fmt::Display for Template {
    /// The template as it would be written in YAML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var(v) => write!(f, "{{{{{}}}}}", v.name())?,
            }
        }
        Ok(())
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            vu: 42,
            iteration: 3,
            room: "0b6c5a1e-0000-4000-8000-000000000001",
            nonce: "ltN",
        }
    }

    #[test]
    fn renders_every_variable() {
        let t = Template::compile(
            "vu-{{vu}} it={{ iteration }} r={{room}} n={{nonce}}",
            Var::ALL,
        )
        .expect("compiles");
        assert_eq!(
            t.render(&vars()),
            "vu-42 it=3 r=0b6c5a1e-0000-4000-8000-000000000001 n=ltN"
        );
        let u = Template::compile("{{uuid}}", Var::ALL)
            .expect("compiles")
            .render(&vars());
        assert!(uuid::Uuid::parse_str(&u).is_ok(), "{u}");
        let now: u128 = Template::compile("{{now}}", Var::ALL)
            .expect("compiles")
            .render(&vars())
            .parse()
            .expect("a number");
        assert!(now > 1_700_000_000_000);
    }

    #[test]
    fn literals_are_detected_and_round_trip() {
        let t = Template::compile("plain text", Var::ALL).expect("compiles");
        assert_eq!(t.as_literal(), Some("plain text"));
        let t = Template::compile("a {{vu}} b", Var::ALL).expect("compiles");
        assert_eq!(t.as_literal(), None);
        assert_eq!(t.to_string(), "a {{vu}} b");
        assert!(t.uses(Var::Vu) && !t.uses(Var::Room));
    }

    #[test]
    fn render_into_appends_to_the_buffer() {
        let t = Template::compile("{{vu}}", Var::ALL).expect("compiles");
        let mut out = String::from("x");
        t.render_into(&vars(), &mut out);
        assert_eq!(out, "x42");
    }

    #[test]
    fn errors_name_the_variable_and_the_alternatives() {
        let e = Template::compile("vu-{{user}}", Var::ALL).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown template variable `{{user}}`; available here: vu, iteration, room, nonce, uuid, now"
        );
        let e = Template::compile("{{room}}", &[Var::Vu, Var::Uuid]).expect_err("not here");
        assert_eq!(
            e.to_string(),
            "template variable `{{room}}` is not available here; available here: vu, uuid"
        );
        let e = Template::compile("ab {{vu", Var::ALL).expect_err("unclosed");
        assert_eq!(
            e.to_string(),
            "`{{` at character 3 is never closed with `}}`"
        );
    }
}
