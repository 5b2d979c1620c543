//! `connect URL`: open one session, report the handshake, optionally hold it open.

use std::time::{Instant, SystemTime};

use serde_json::json;

use super::client_setup::{client_failure, options};
use super::output::{Style, emit_line, local_clock, millis, rfc3339};
use crate::cli::ConnectArgs;
use crate::client::{ConnectInfo, DisconnectReason, Session, SessionEvent};
use crate::exit::{CommandError, ExitCode};

pub async fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let mut options = options(&args.client).await?;
    options.report_pings = args.hold.is_some();
    let target = options.display_target();
    let json = args.client.json;
    let mut session = Session::connect(&options)
        .await
        .map_err(|e| client_failure(e, &format!("connecting to {target}")))?;
    print_report(&target, session.info(), json);

    let Some(hold) = args.hold else {
        session.disconnect().await;
        return Ok(ExitCode::Ok);
    };
    let style = Style::for_stdout();
    let until = Instant::now() + hold;
    let mut pings = 0u64;
    let ended_by_server = loop {
        tokio::select! {
            event = session.next_event() => match event {
                Some(SessionEvent::Ping { received_at }) => {
                    pings += 1;
                    print_line(json, &style, received_at, "ping", json!({}), "");
                }
                Some(SessionEvent::Event(e)) => {
                    if let Some(id) = e.ack_id {
                        let _ = session.ack(id, Vec::new());
                    }
                    let args = serde_json::Value::from(e.args);
                    let text = super::output::cut(&args.to_string(), 100);
                    print_line(json, &style, e.received_at, "event", json!({"event": e.name, "args": args}), &format!("{} {text}", e.name));
                }
                Some(SessionEvent::Disconnected(reason)) => break Some(reason),
                None => break Some(DisconnectReason::TransportClose),
            },
            _ = tokio::time::sleep_until(until.into()) => break None,
            _ = tokio::signal::ctrl_c() => break None,
        }
    };
    match ended_by_server {
        None => {
            session.disconnect().await;
            let reason = DisconnectReason::ClientDisconnect.to_string();
            print_line(
                json,
                &style,
                SystemTime::now(),
                "disconnect",
                json!({"reason": reason, "pings": pings}),
                &format!("{reason} after {pings} pings"),
            );
            Ok(ExitCode::Ok)
        }
        Some(reason) => {
            print_line(
                json,
                &style,
                SystemTime::now(),
                "disconnect",
                json!({"reason": reason.to_string(), "pings": pings}),
                &format!("{reason} after {pings} pings"),
            );
            Err(CommandError::new(
                ExitCode::Failure,
                format!(
                    "the session ended before --hold ran out: {reason}\n  try: check the server's logs; 'ping timeout' means the server stopped answering"
                ),
            )
            .into())
        }
    }
}

fn print_line(
    json: bool,
    style: &Style,
    at: SystemTime,
    kind: &str,
    mut fields: serde_json::Value,
    text: &str,
) {
    if json {
        if let Some(map) = fields.as_object_mut() {
            map.insert("type".into(), kind.into());
            map.insert("at".into(), rfc3339(at).into());
        }
        emit_line(&fields.to_string());
    } else {
        let line = format!(
            "{} {} {text}",
            style.paint("2", &local_clock(at)),
            style.paint("36", kind)
        );
        emit_line(line.trim_end());
    }
}

fn print_report(target: &str, info: &ConnectInfo, json: bool) {
    let h = &info.handshake;
    if json {
        let report = json!({
            "type": "connected",
            "url": target,
            "transport": info.transport.as_str(),
            "sid": h.sid,
            "namespace_sid": info.namespace_sid,
            "upgrades": h.upgrades,
            "ping_interval_ms": h.ping_interval,
            "ping_timeout_ms": h.ping_timeout,
            "max_payload": h.max_payload,
            "engine_open_ms": millis(info.engine_open),
            "upgrade_ms": info.upgraded.map(millis),
            "namespace_connect_ms": millis(info.namespace_connect),
        });
        println!("{report}");
        return;
    }
    let transport = info.transport.describe();
    println!("connected to {target}");
    println!("  transport          {transport}");
    println!("  engine sid         {}", h.sid);
    if let Some(sid) = &info.namespace_sid {
        println!("  socket sid         {sid}");
    }
    let upgrades = if h.upgrades.is_empty() {
        "none".to_string()
    } else {
        h.upgrades.join(", ")
    };
    println!("  upgrades           {upgrades}");
    println!(
        "  ping               every {} ms, timeout {} ms",
        h.ping_interval, h.ping_timeout
    );
    match h.max_payload {
        Some(n) => println!("  max payload        {n} bytes"),
        None => println!("  max payload        not announced"),
    }
    println!("  engine open        {:.1} ms", millis(info.engine_open));
    if let Some(up) = info.upgraded {
        println!("  upgrade done       {:.1} ms", millis(up));
    }
    println!(
        "  namespace connect  {:.1} ms",
        millis(info.namespace_connect)
    );
}
