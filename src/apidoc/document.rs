//! Reading and writing OpenAPI documents: JSON or YAML in, 2-space JSON or YAML out, and an
//! output file that appears whole or not at all.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    #[error("{}:{line}:{column}: not valid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{}: not valid YAML: {message}", path.display(), place(*line, *column))]
    Yaml {
        path: PathBuf,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    #[error("{}: not an OpenAPI document: {problem}", path.display())]
    NotOpenApi { path: PathBuf, problem: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialise the document as {format}: {message}")]
    Serialise {
        format: &'static str,
        message: String,
    },
}

fn place(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Read a JSON or YAML file into a value, keeping its key order.
pub fn read_value(path: &Path) -> Result<Value, DocumentError> {
    let bytes = fs::read(path).map_err(|source| DocumentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| DocumentError::Invalid {
        path: path.to_path_buf(),
        problem: format!(
            "not UTF-8 text (invalid byte at offset {}); expected JSON or YAML",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim().is_empty() {
        return Err(DocumentError::Invalid {
            path: path.to_path_buf(),
            problem: "the file is empty; expected a JSON or YAML OpenAPI document".into(),
        });
    }
    if looks_like_json(path, text) {
        serde_json::from_str(text).map_err(|e| DocumentError::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: strip_json_position(&e.to_string()),
        })
    } else {
        // The default budget (250,000 nodes) guards against alias bombs but would refuse a
        // large real spec (GitHub's is several MB); a document cannot legitimately hold more
        // nodes than it has bytes, so the cap grows with the input and still bounds expansion.
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_nodes: text.len().max(250_000),
            },
        };
        serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
            let location = e.location();
            DocumentError::Yaml {
                path: path.to_path_buf(),
                line: location.map(|l| l.line()),
                column: location.map(|l| l.column()),
                message: yaml_message(&e.to_string()),
            }
        })
    }
}

/// A `.json` file, or text that opens like JSON, gets JSON's error messages, which say more
/// about a broken brace than a YAML parser would.
fn looks_like_json(path: &Path, text: &str) -> bool {
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    by_extension || text.trim_start().starts_with(['{', '['])
}

/// serde_json appends " at line L column C", which the error already shows as `path:L:C`.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// serde-saphyr renders `error: line L column C: message` and a source snippet below it; the
/// place is already in `path:L:C`, so only the message is kept.
fn yaml_message(rendered: &str) -> String {
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(rendered)
        .trim();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let message = match message.split_once(": ") {
        Some((place, rest)) if place.starts_with("line ") && place.contains(" column ") => rest,
        _ => message,
    };
    if message.starts_with("budget breached") {
        return format!(
            "{message}: the document expands beyond the parser's safety limits (anchors and \
             aliases repeated too often?)"
        );
    }
    // Advice addressed to the programmer using the library, not to the user.
    match message.split_once(", set DuplicateKeyPolicy") {
        Some((head, _)) => head.to_string(),
        None => message.to_string(),
    }
}

/// Read a file that must be an OpenAPI 3 document.
pub fn read_openapi(path: &Path) -> Result<Value, DocumentError> {
    let value = read_value(path)?;
    check_openapi(&value).map_err(|problem| DocumentError::NotOpenApi {
        path: path.to_path_buf(),
        problem,
    })?;
    Ok(value)
}

/// The minimum that makes a value an OpenAPI 3 document this tool can merge into.
pub fn check_openapi(value: &Value) -> Result<(), String> {
    let Some(map) = value.as_object() else {
        return Err(format!(
            "the top level is {}, not a mapping",
            kind_of(value)
        ));
    };
    if map.contains_key("swagger") {
        return Err(
            "this is a Swagger 2.0 document; convert it to OpenAPI 3 first (for example with swagger2openapi)"
                .into(),
        );
    }
    match map.get("openapi") {
        None => return Err("no `openapi` version field at the top level".into()),
        Some(Value::String(v)) => {
            if version_of(v).is_none_or(|(major, _)| major != 3) {
                return Err(format!(
                    "`openapi` is \"{v}\"; only OpenAPI 3.x documents are supported"
                ));
            }
        }
        Some(other) => {
            return Err(format!(
                "`openapi` is {}, expected a version string such as \"3.0.0\"",
                kind_of(other)
            ));
        }
    }
    match map.get("info") {
        Some(Value::Object(_)) => Ok(()),
        None => Err("no `info` object at the top level".into()),
        Some(other) => Err(format!("`info` is {}, expected an object", kind_of(other))),
    }
}

/// `"3.0.3"` -> `(3, 0)`.
pub fn version_of(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// How a document is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// The format to write: the flag, else the output file's extension, else JSON.
pub fn pick_format(flag: Option<Format>, output: Option<&Path>) -> Format {
    if let Some(f) = flag {
        return f;
    }
    let yaml_ext = output
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml_ext { Format::Yaml } else { Format::Json }
}

pub fn render(value: &Value, format: Format) -> Result<String, DocumentError> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| DocumentError::Serialise {
                format: "JSON",
                message: e.to_string(),
            }),
        Format::Yaml => serde_saphyr::to_string(value).map_err(|e| DocumentError::Serialise {
            format: "YAML",
            message: e.to_string(),
        }),
    }
}

/// Write `text` to stdout, or to `path` through a temporary file in the same directory that is
/// renamed into place, so a reader (or a failed run) never sees a half-written document.
pub fn write_text(text: &str, path: Option<&Path>) -> Result<(), DocumentError> {
    let Some(path) = path else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            // `spec websocket | head` closing the pipe early is the reader's choice, not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(|source| DocumentError::Write {
                path: PathBuf::from("<stdout>"),
                source,
            }),
        };
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DocumentError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output path names no file",
            ),
        })?;
    let fail = |source| DocumentError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (tmp_path, mut file) = create_temp(&dir, &name).map_err(fail)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .and_then(|_| {
            drop(file);
            fs::rename(&tmp_path, path)
        });
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(fail(source));
    }
    Ok(())
}

fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, fs::File)> {
    let pid = std::process::id();
    let mut last = None;
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let candidate = dir.join(format!(".{name}.{pid}.{nanos:x}{attempt}.tmp"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(file) => return Ok((candidate, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary file name")))
}
