//! `session`: print a cookie for scripts.

use crate::cli::SessionArgs;

pub async fn run(_args: SessionArgs) -> anyhow::Result<()> {
    anyhow::bail!("session is being written")
}
