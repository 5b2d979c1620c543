//! What the benches that start `serve` as a process share.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// The base URL `serve` logs once it listens (the benches start it on port 0); the rest of its
/// log is drained on a thread so a chatty server never blocks on a full pipe.
pub fn serve_address(server: &mut Child) -> String {
    let mut lines = BufReader::new(server.stderr.take().expect("stderr piped")).lines();
    let base = loop {
        let line = lines.next().expect("serve logs its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(!line.contains("ERROR"), "serve failed to start: {line}");
    };
    std::thread::spawn(move || for _ in lines {});
    base
}

/// The number after `--name` among the bench's arguments, or `default`.
pub fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
