//! Polling first, then a websocket (socket.io-client's default, and the production web
//! client's fallback): the engine handshake over HTTP, the upgrade probe, then the session
//! continues on the websocket.

use std::time::Instant;

use super::{Early, Link, polling, websocket, within};
use crate::client::session::ConnectInfo;
use crate::client::{ClientError, ConnectOptions, Transport};

/// Polling handshake, websocket upgrade (probe, then upgrade packet), namespace CONNECT on the
/// websocket.
pub(super) async fn connect(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let (handshake, polling, engine_open) = polling::handshake(options, started, deadline).await?;
    if !handshake.upgrades.iter().any(|u| u == "websocket") {
        return Err(ClientError::Protocol(
            "the server offers no websocket upgrade: use --transport polling".into(),
        ));
    }
    // Upgrade before the namespace CONNECT: no polling GET is in flight, so the server has
    // nothing to flush and the probe is the only exchange.
    let mut ws = within(
        deadline,
        "the websocket upgrade",
        started,
        websocket::open(options, Some(&handshake.sid)),
    )
    .await?;
    within(deadline, "the upgrade probe answer", started, async {
        websocket::send_text(&mut ws, "2probe".into()).await?;
        loop {
            let text = websocket::next_text(&mut ws).await?;
            if text == "3probe" {
                return Ok(());
            }
        }
    })
    .await?;
    websocket::send_text(&mut ws, "5".into()).await?;
    let upgraded = started.elapsed();
    drop(polling);
    let (namespace_sid, early) =
        websocket::connect_namespace(&mut ws, options, started, deadline).await?;
    let info = ConnectInfo {
        handshake,
        namespace_sid,
        transport: Transport::Upgrade,
        engine_open,
        upgraded: Some(upgraded),
        namespace_connect: started.elapsed(),
    };
    Ok((Link::Websocket(ws), info, early))
}
