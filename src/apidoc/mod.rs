//! API documentation, the library behind the `spec` command: the websocket part of the OpenAPI
//! document generated from `protocol.rs`, its merge into a REST document, the drift check, the
//! AsyncAPI restatement, and the reference server's own document and documentation page.

pub mod asyncapi;
pub mod check;
pub mod document;
pub mod merge;
pub mod server_doc;
pub mod upgrade;
pub mod validate;
pub mod websocket;

pub use server_doc::{docs_page, server_document};
