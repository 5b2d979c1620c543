//! One file per command: arguments in, library call, output, exit code. Nothing below this
//! layer (client, server, loadtest, apidoc, store) sees the command line.

pub mod check;
pub mod client_setup;
pub mod completions;
pub mod connect;
pub mod db;
pub mod join;
pub mod listen;
pub mod load_test;
pub mod output;
pub mod report;
pub mod serve;
pub mod session_cookie;
pub mod spec;

pub use output::init_local_offset;
