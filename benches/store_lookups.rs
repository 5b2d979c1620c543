//! What the store's per-join lookups cost on the in-memory database `serve --dev` uses: the
//! account and the chat's access facts as two queries, against the one `join_facts` query.
//! Not a test: run it in release and record the figures in docs/BENCHMARKS.md.
//!
//!     cargo bench --bench store_lookups

use std::time::Instant;

use scmarket_ws::protocol::ChatId;
use scmarket_ws::store::fixtures::{DEMO_YAML, Fixtures};
use scmarket_ws::store::{SqliteStore, Store};

/// The demo order chat: its check walks the order, its contractor and the viewer's membership.
const ORDER_CHAT: &str = "5c0000c4-0000-4000-8000-000000000001";
const ROUNDS: usize = 5;
const LOOKUPS: u32 = 100_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let (store, _) = SqliteStore::open("sqlite::memory:").await?;
    store
        .load_fixtures(&Fixtures::parse(DEMO_YAML, "demo data")?)
        .await?;
    let viewer = store
        .user_by_username("alice")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo data has alice"))?
        .user_id;
    let chat = ChatId::parse(ORDER_CHAT)?;
    // Alternate the two, so a busy neighbour weighs on both alike.
    for round in 1..=ROUNDS {
        let started = Instant::now();
        for _ in 0..LOOKUPS {
            let user = store.user_by_id(viewer).await?;
            let facts = store.chat_access_facts(chat, viewer).await?;
            std::hint::black_box((user, facts));
        }
        let two = started.elapsed() / LOOKUPS;
        let started = Instant::now();
        for _ in 0..LOOKUPS {
            std::hint::black_box(store.join_facts(chat, viewer).await?);
        }
        let one = started.elapsed() / LOOKUPS;
        println!(
            "round {round}: user_by_id + chat_access_facts {:.2} µs, join_facts {:.2} µs per join",
            two.as_nanos() as f64 / 1e3,
            one.as_nanos() as f64 / 1e3
        );
    }
    Ok(())
}
