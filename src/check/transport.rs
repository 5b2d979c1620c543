//! The transport family: user A reaches the namespace CONNECT over each way a client connects
//! (the web client tries websocket first and falls back to polling; socket.io-client's default
//! is polling upgraded to a websocket).

use super::context::Context;
use super::probe::{Handshake, handshake};
use super::{Finding, NEEDS_A};
use crate::client::Transport;

pub async fn reaches_connect(ctx: &Context, transport: Transport) -> Finding {
    let Some(a) = &ctx.a else {
        return Finding::skipped(&[NEEDS_A]);
    };
    let step = format!("{} session as user A", transport.describe());
    let (outcome, evidence) = handshake(ctx, &step, a.cookies(), transport, None).await;
    let finding = match &outcome {
        Handshake::Accepted(session) => {
            let info = session.info();
            let finding = Finding::pass(format!(
                "CONNECT over {} after {} ms",
                info.transport.describe(),
                info.namespace_connect.as_millis()
            ))
            .measure("connect_ms", info.namespace_connect.as_secs_f64() * 1000.0);
            match info.upgraded {
                Some(upgraded) => finding.measure("upgraded_ms", upgraded.as_secs_f64() * 1000.0),
                None => finding,
            }
        }
        Handshake::Refused { .. } => Finding::fail(format!(
            "user A's {} handshake was refused",
            transport.describe()
        )),
        Handshake::Failed(e) => {
            Finding::fail(format!("no CONNECT over {}: {e}", transport.describe()))
        }
    };
    outcome.close().await;
    finding.with(vec![evidence])
}
