//! `serve`'s accept loop: hyper's HTTP/1 connection driver on each accepted TCP connection,
//! with what `axum::serve` does not offer against slow and idle clients (slowloris):
//!
//! - a header-read timeout: a request head must arrive complete within it, counted from the
//!   connection's open or from the end of the previous answer, so a connection that sends
//!   headers a byte at a time, or opens and sends nothing, or idles between requests, is
//!   closed (a websocket, once upgraded, is the engine's: its pings decide);
//! - a cap on concurrent TCP connections per client IP, websockets included (the count is held
//!   by the connection's stream, which an upgraded websocket keeps); past it, a new connection
//!   is closed at once, before anything is read.
//!
//! Both are counted in `/metrics`. The listen backlog and graceful shutdown stay as they were.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::AppState;

/// What the accept loop enforces; 0 (or a zero duration) turns that limit off.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections_per_ip: u32,
}

/// How long an accept error (typically the open-file limit) pauses the loop, so it does not
/// spin while the process has no descriptor to give.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Open connections per client IP.
struct PerIp {
    open: DashMap<IpAddr, u32>,
    cap: u32,
}

/// One connection's place in its IP's count and in `tcp_connections_open`, given back when
/// the connection's stream is dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
    open: Gauge,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, open_gauge: &Gauge) -> Option<IpSlot> {
        let mut open = self.open.entry(ip).or_insert(0);
        if self.cap != 0 && *open >= self.cap {
            return None;
        }
        *open += 1;
        open_gauge.inc();
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
            open: open_gauge.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.open.dec();
        if let Some(mut open) = self.per_ip.open.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
        }
        self.per_ip.open.remove_if(&self.ip, |_, open| *open == 0);
    }
}

/// A TCP stream carrying its connection's slot, so the slot lives exactly as long as the
/// connection, through a websocket upgrade.
struct Counted {
    stream: TcpStream,
    _slot: IpSlot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accept and serve connections until `shutdown` resolves; then stop accepting, run `closing`
/// (which closes the sockets, or open websockets would hold the shutdown forever) and wait for
/// the connections still answering.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    app: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    closing: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let per_ip = Arc::new(PerIp {
        open: DashMap::new(),
        cap: limits.max_connections_per_ip,
    });
    // HTTP/1 only: the header-read timeout is an HTTP/1 setting, and the engine and REST
    // clients speak HTTP/1 (websockets upgrade from it).
    let mut http = AutoBuilder::new(TokioExecutor::new()).http1_only();
    http.http1().timer(TokioTimer::new());
    if !limits.header_read_timeout.is_zero() {
        http.http1().header_read_timeout(limits.header_read_timeout);
    }
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let Some(slot) = per_ip.take(ip, &app.metrics.tcp_connections_open) else {
            app.metrics.connection_refused("per_ip_cap");
            tracing::debug!(%peer, "per-IP connection cap reached; closing the new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let header_read_timeout = limits.header_read_timeout;
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let http = http.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper-util reads the first bytes (to tell HTTP/1 from HTTP/2) before hyper's
            // header timer starts, so a connection that sends nothing is timed here.
            if !header_read_timeout.is_zero()
                && tokio::time::timeout(header_read_timeout, stream.peek(&mut [0u8; 1]))
                    .await
                    .is_err()
            {
                app.metrics.tcp_connections_timed_out.inc();
                tracing::debug!(%peer, "closed a connection that sent nothing in time");
                return;
            }
            let connection = http
                .serve_connection_with_upgrades(
                    TokioIo::new(Counted {
                        stream,
                        _slot: slot,
                    }),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                if e.downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout)
                {
                    app.metrics.tcp_connections_timed_out.inc();
                    tracing::debug!(%peer, "closed a connection that sent no complete request head in time");
                } else {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    closing.await;
    graceful.shutdown().await;
    Ok(())
}
