//! The `scmarket-ws` binary as the tests run it: in a clean environment, so a developer's
//! SESSION_SECRET, SCMARKET_WS_COOKIE, RUST_LOG or terminal width never decides whether a test
//! passes. Every test that runs the binary starts it through [`command`] or [`async_command`].

use std::ffi::OsString;
use std::process::Command;

use clap::CommandFactory;
use scmarket_ws::cli::Cli;

pub const PATH: &str = env!("CARGO_BIN_EXE_scmarket-ws");

/// Variables that change what the binary prints without being a flag's: the log filter, colour
/// switches (NO_COLOR, and CLICOLOR* read by clap's and indicatif's terminal crates), and the
/// width clap wraps help at and `listen` truncates lines at.
const OUTPUT_VARIABLES: [&str; 6] = [
    "RUST_LOG",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "LINES",
];

/// Every variable a flag falls back to (`env = "..."` in `src/cli.rs`), found by walking the
/// command tree, so a flag added later is kept out of the tests' environment too.
pub fn flag_variables() -> Vec<OsString> {
    fn walk(command: &clap::Command, found: &mut Vec<OsString>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env()
                && !found.iter().any(|f| f == name)
            {
                found.push(name.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, found);
        }
    }
    let mut found = Vec::new();
    walk(&Cli::command(), &mut found);
    found
}

/// Remove from `command`'s environment every variable the binary reads, then set NO_COLOR=1:
/// no colour codes in output a test reads, whatever the developer's terminal.
pub fn clean(command: &mut Command) -> &mut Command {
    for name in flag_variables() {
        command.env_remove(name);
    }
    for name in OUTPUT_VARIABLES {
        command.env_remove(name);
    }
    command.env("NO_COLOR", "1")
}

/// `scmarket-ws` with a clean environment; add arguments, a working directory, and any variable
/// a test means to set.
pub fn command() -> Command {
    let mut command = Command::new(PATH);
    clean(&mut command);
    command
}

/// The same as a tokio process, killed when its handle is dropped so a failed test leaves no
/// process behind.
pub fn async_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::from(command());
    command.kill_on_drop(true);
    command
}
