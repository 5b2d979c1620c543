//! Measure what one client session costs: connect time and resident memory per open session.
//!
//! cargo bench --bench client_sessions -- URL N [websocket|polling|upgrade] [COOKIE] [CONCURRENCY] [ACKS]
//!
//! Opens N sessions (CONCURRENCY at a time, default 1 = one after another), holds them all open,
//! and prints connect-time percentiles and (RSS after - RSS before) / N. Raise `ulimit -n` above N.
//! With ACKS > 0, every session then emits `echo` with an acknowledgement ACKS times (all
//! sessions at once, each one after the other), and the CPU time of that phase is printed: the
//! server must answer `echo` acks (tests/node/mimic-server.js does).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use scmarket_ws::client::{ConnectOptions, Session, Transport};

/// Live heap bytes, to tell our own allocations apart from allocator and page overhead in RSS.
struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    // utime + stime in clock ticks (100 per second on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` appends `--bench` (meant for libtest, which this harness-less bench is not).
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let usage =
        "usage: client_sessions URL N [websocket|polling|upgrade] [COOKIE] [CONCURRENCY] [ACKS]";
    let url = args.get(1).ok_or_else(|| anyhow::anyhow!(usage))?.clone();
    let n: usize = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let transport: Transport = args
        .get(3)
        .map(|t| t.parse())
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or_default();
    let cookie = args.get(4).cloned();
    let concurrency: usize = args.get(5).map(|c| c.parse()).transpose()?.unwrap_or(1);
    let acks: usize = args.get(6).map(|c| c.parse()).transpose()?.unwrap_or(0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut options = ConnectOptions::new(&url, None)?;
        options.transport = transport;
        options.timeout = Duration::from_secs(30);
        if let Some(cookie) = &cookie {
            options.add_cookies(cookie)?;
        }
        // One warm-up session so one-time costs (TLS roots, runtime, allocator arenas) are not
        // charged to the sessions measured.
        let warm = Session::connect(&options).await?;
        warm.disconnect().await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let rss_before = rss_kib();
        let heap_before = LIVE.load(Ordering::Relaxed);
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        // A plain loop for one at a time: buffer_unordered keeps each finished connect future's
        // slot (several KiB) until the stream is dropped, which would blur the figure.
        let results: Vec<_> = if concurrency <= 1 {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Session::connect(&options).await);
            }
            v
        } else {
            futures_util::stream::iter(0..n)
                .map(|_| Session::connect(&options))
                .buffer_unordered(concurrency)
                .collect()
                .await
        };
        let elapsed = started.elapsed();
        let mut sessions = Vec::with_capacity(n);
        let mut failed = 0;
        let mut opens = Vec::with_capacity(n);
        let mut connects = Vec::with_capacity(n);
        for r in results {
            match r {
                Ok(s) => {
                    opens.push(s.info().engine_open);
                    connects.push(s.info().namespace_connect);
                    sessions.push(s);
                }
                Err(e) => {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("first failure: {e}");
                    }
                }
            }
        }
        // Let the first pings and any lazily grown buffers settle before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = rss_kib();
        let heap_after = LIVE.load(Ordering::Relaxed);
        let cpu = cpu_seconds() - cpu_before;
        opens.sort();
        connects.sort();
        let pct = |v: &[Duration], p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            v[i].as_secs_f64() * 1000.0
        };
        let open_count = sessions.len().max(1);
        println!(
            "{} sessions over {transport} (concurrency {concurrency}), {failed} failed, in {:.2} s ({:.0}/s), CPU {:.2} s",
            sessions.len(),
            elapsed.as_secs_f64(),
            sessions.len() as f64 / elapsed.as_secs_f64(),
            cpu
        );
        println!(
            "engine open ms: p50 {:.2} p99 {:.2}; namespace connect ms: p50 {:.2} p99 {:.2} max {:.2}",
            pct(&opens, 0.5),
            pct(&opens, 0.99),
            pct(&connects, 0.5),
            pct(&connects, 0.99),
            pct(&connects, 1.0)
        );
        println!(
            "RSS {} KiB -> {} KiB: {:.1} KiB per open session",
            rss_before,
            rss_after,
            (rss_after.saturating_sub(rss_before)) as f64 / open_count as f64
        );
        println!(
            "live heap: {:.1} KiB per open session",
            (heap_after - heap_before) as f64 / 1024.0 / open_count as f64
        );
        if acks > 0 {
            let cpu_before = cpu_seconds();
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for s in &sessions {
                let handle = s.handle().clone();
                tasks.spawn(async move {
                    let mut failed = 0;
                    for i in 0..acks {
                        let args = vec![serde_json::json!({ "n": i })];
                        if handle.emit_with_ack("echo", args, Duration::from_secs(10)).await.is_err() {
                            failed += 1;
                        }
                    }
                    failed
                });
            }
            let mut failed = 0;
            while let Some(r) = tasks.join_next().await {
                failed += r.unwrap_or(acks);
            }
            println!(
                "{} acked emits ({failed} failed) in {:.2} s, client CPU {:.2} s",
                sessions.len() * acks,
                started.elapsed().as_secs_f64(),
                cpu_seconds() - cpu_before
            );
        }
        for s in &sessions {
            s.disconnect().await;
        }
        anyhow::Ok(())
    })
}
