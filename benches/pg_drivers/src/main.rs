//! Round trips per second of the store's two hot lookups (the session's account at every
//! handshake, the join facts at every `clientJoinRoom`) through each driver, alternating
//! rounds: tokio-postgres + deadpool-postgres against sqlx-postgres, one at a time and 64 at
//! once over a pool of 16.
//!
//!     cargo build --release --bin scmarket-ws     # in the main crate, for --init
//!     cd benches/pg_drivers && cargo run --release -- [--rounds 4] [--lookups 20000]
//!
//! Env `SCMARKET_WS_BENCH_POSTGRES`: another server's maintenance URL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

const ORDER_CHAT: &str = "5c0000c4-0000-4000-8000-000000000001";
const ALICE: &str = "5c000000-0000-4000-8000-000000000001";
const POOL: usize = 16;
const TASKS: usize = 64;

/// The lookups, as the store runs them (simplified permissions: one role column).
const SESSION_SQL: &str = "SELECT p.u, a.user_id, COALESCE(a.username, ''), a.role, a.banned \
     FROM login_sessions s \
     CROSS JOIN LATERAL (SELECT s.sess::json -> 'passport' ->> 'user' AS u) p \
     LEFT JOIN accounts a ON a.user_id = CASE \
         WHEN p.u ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p.u::uuid END \
     WHERE s.sid = $1 AND s.expire > (now() AT TIME ZONE 'utc')";
const JOIN_SQL: &str = "SELECT a.user_id, COALESCE(a.username, ''), a.role, a.banned, c.chat_id IS NOT NULL, \
       EXISTS(SELECT 1 FROM chat_participants p WHERE p.chat_id = c.chat_id AND p.user_id = $1), \
       o.customer_id, o.assigned_id, o.contractor_id, \
       EXISTS(SELECT 1 FROM contractor_members m WHERE m.contractor_id = o.contractor_id AND m.user_id = $1), \
       EXISTS(SELECT 1 FROM contractor_member_roles mr JOIN contractor_roles r ON r.role_id = mr.role_id \
              WHERE mr.user_id = $1 AND r.contractor_id = o.contractor_id AND r.manage_orders) \
     FROM accounts a LEFT JOIN chats c ON c.chat_id = $2 \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN offer_sessions s ON s.id = c.session_id WHERE a.user_id = $1";

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run_tasks<F, Fut>(lookups: usize, tasks: usize, f: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                for _ in 0..lookups / tasks {
                    f().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (lookups / tasks * tasks) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = flag(&args, "--rounds", 4);
    let lookups = flag(&args, "--lookups", 20_000);
    let maintenance = std::env::var("SCMARKET_WS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("scmarket_ws_bench_drivers_{}", std::process::id());
    let url = format!("{}/{db}", maintenance.rsplit_once('/').unwrap().0);
    let (admin, conn) = tokio_postgres::connect(&maintenance, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();

    // The tables and the demo data, as `serve --dev --init` makes them.
    let exe = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/scmarket-ws");
    let mut init = Command::new(exe)
        .args(["serve", "--dev", "--init", "--database", &url])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("target/release/scmarket-ws (cargo build --release in the main crate)");
    for line in BufReader::new(init.stderr.take().unwrap()).lines() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    let _ = init.kill();
    let _ = init.wait();

    let sid = Uuid::new_v4().simple().to_string();
    let (setup, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    setup
        .execute(
            "INSERT INTO login_sessions (sid, sess, expire) VALUES ($1, \
             json_build_object('passport', json_build_object('user', $2::text)), \
             (now() AT TIME ZONE 'utc') + interval '1 day')",
            &[&sid, &ALICE],
        )
        .await
        .unwrap();
    let alice = Uuid::parse_str(ALICE).unwrap();
    let chat = Uuid::parse_str(ORDER_CHAT).unwrap();

    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let deadpool = deadpool_postgres::Pool::builder(manager)
        .max_size(POOL)
        .build()
        .unwrap();
    let sqlx_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL as u32)
        .connect(&url)
        .await
        .unwrap();

    println!(
        "pg_drivers: {lookups} handshake + join lookup pairs per figure, pool of {POOL}; pairs/s"
    );
    for round in 1..=rounds {
        for tasks in [1, TASKS] {
            let (pool, sid2) = (deadpool.clone(), sid.clone());
            let tp = run_tasks(lookups, tasks, move || {
                let (pool, sid) = (pool.clone(), sid2.clone());
                async move {
                    let client = pool.get().await.unwrap();
                    let s = client.prepare_cached(SESSION_SQL).await.unwrap();
                    std::hint::black_box(client.query_opt(&s, &[&sid]).await.unwrap());
                    let j = client.prepare_cached(JOIN_SQL).await.unwrap();
                    std::hint::black_box(client.query_opt(&j, &[&alice, &chat]).await.unwrap());
                }
            })
            .await;
            let (pool, sid2) = (sqlx_pool.clone(), sid.clone());
            let sx = run_tasks(lookups, tasks, move || {
                let (pool, sid) = (pool.clone(), sid2.clone());
                async move {
                    // One connection for both, as the tokio-postgres side does.
                    let mut conn = pool.acquire().await.unwrap();
                    std::hint::black_box(
                        sqlx::query(SESSION_SQL)
                            .bind(&sid)
                            .fetch_optional(&mut *conn)
                            .await
                            .unwrap(),
                    );
                    std::hint::black_box(
                        sqlx::query(JOIN_SQL)
                            .bind(alice)
                            .bind(chat)
                            .fetch_optional(&mut *conn)
                            .await
                            .unwrap(),
                    );
                }
            })
            .await;
            println!(
                "round {round}, {tasks:>2} at once: tokio-postgres+deadpool {tp:>7.0}, sqlx-postgres {sx:>7.0}"
            );
        }
    }
    drop(deadpool);
    sqlx_pool.close().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}
