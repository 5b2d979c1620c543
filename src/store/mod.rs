//! Persistence behind a small trait.
