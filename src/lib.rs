//! scmarket-ws: test and operate SC Market's Socket.IO realtime layer.
//!
//! The binary (`src/main.rs`) parses the command line and runs one command; everything it runs
//! lives in this library so integration tests can start the same server and clients in-process.

pub mod apidoc;
pub mod check;
pub mod cli;
pub mod client;
pub mod commands;
pub mod duration;
pub mod exit;
pub mod loadtest;
pub mod protocol;
pub mod server;
pub mod store;
