//! `join URL CHAT_ID...`: join (or leave) rooms and report what the server answered, and how
//! many times each request was sent to get there.

use serde_json::json;

use super::client_setup::{chat_ids, client_failure, options};
use super::output::Style;
use crate::cli::JoinArgs;
use crate::client::Session;
use crate::client::rooms::{self, Landing, RoomAction, RoomOutcome};
use crate::exit::{CommandError, ExitCode};

const NO_CONFIRMATION: &str = "the server gives no confirmation (production never acknowledges room requests; a refused join is silent there)";

pub async fn run(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let chats = chat_ids(&args.chat_ids, args.room.normalize_ids)?;
    let options = options(&args.client).await?;
    let target = options.display_target();
    let session = Session::connect(&options)
        .await
        .map_err(|e| client_failure(e, &format!("connecting to {target}")))?;
    let action = if args.leave {
        RoomAction::Leave
    } else {
        RoomAction::Join
    };
    let resend = args.room.resend();
    let landings = rooms::land_all(
        session.handle(),
        action,
        &chats,
        &resend,
        args.room.ack_wait,
    )
    .await
    .map_err(|e| client_failure(e, "sending the room requests"))?;
    session.disconnect().await;

    let action_name = if args.leave { "leave" } else { "join" };
    if args.client.json {
        let rooms: Vec<_> = chats
            .iter()
            .zip(&landings)
            .map(|(chat, landing)| {
                let mut r = json!({
                    "chat_id": chat,
                    "action": action_name,
                    "result": landing.outcome.word(action),
                    "sends": landing.sends,
                });
                if let RoomOutcome::Refused(reason) = &landing.outcome {
                    r["error"] = reason.as_str().into();
                }
                r
            })
            .collect();
        println!("{}", json!({ "rooms": rooms }));
    } else {
        let style = Style::for_stdout();
        for (chat, landing) in chats.iter().zip(&landings) {
            let word = format!("{:<11}", landing.outcome.word(action));
            let sent = sent_note(landing);
            match &landing.outcome {
                RoomOutcome::Done => println!("{} {chat}{sent}", style.paint("32", &word)),
                RoomOutcome::Refused(reason) => {
                    println!("{} {chat}  {reason}{sent}", style.paint("31", &word))
                }
                RoomOutcome::Unconfirmed => {
                    println!("{} {chat}{sent}", style.paint("33", &word))
                }
            }
        }
        if landings
            .iter()
            .any(|l| l.outcome == RoomOutcome::Unconfirmed)
        {
            println!(
                "note: no acknowledgement within {:?} of the last send: {NO_CONFIRMATION}; each request was sent again at 25 ms, 50 ms, 100 ms... up to {:?} (--resend-until) so that a server that listens late still hears one",
                args.room.ack_wait,
                resend.window()
            );
        }
    }
    let refused = landings
        .iter()
        .filter(|l| matches!(l.outcome, RoomOutcome::Refused(_)))
        .count();
    if refused > 0 {
        return Err(CommandError::new(
            ExitCode::Failure,
            format!(
                "the server refused {refused} of {} room requests\n  try: check that the chat exists and that this user takes part in it",
                landings.len()
            ),
        )
        .into());
    }
    Ok(ExitCode::Ok)
}

/// "  (sent 3 times; ...)" when a request went out more than once or was never answered.
fn sent_note(landing: &Landing) -> String {
    match (&landing.outcome, landing.sends) {
        (RoomOutcome::Unconfirmed, 1) => "  (sent once; the server gives no confirmation)".into(),
        (RoomOutcome::Unconfirmed, n) => {
            format!("  (sent {n} times; the server gives no confirmation)")
        }
        (_, 1) => String::new(),
        (_, n) => format!("  (answered after {n} sends)"),
    }
}
