//! `serve`: the reference realtime server.

pub mod session;

use crate::cli::ServeArgs;

pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is being written")
}
