//! `join URL CHAT_ID...`: join (or leave) rooms and report what the server answered.

use serde_json::json;

use super::client_setup::{client_failure, options, parse_chat_ids};
use super::output::Style;
use crate::cli::JoinArgs;
use crate::client::Session;
use crate::client::rooms::{self, RoomAction, RoomOutcome};
use crate::exit::{CommandError, ExitCode};

const NO_CONFIRMATION: &str = "the server gives no confirmation (production never acknowledges room requests; a refused join is silent there)";

pub async fn run(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let chats = parse_chat_ids(&args.chat_ids)?;
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
    let outcomes = rooms::request_all(session.handle(), action, &chats, args.ack_wait)
        .await
        .map_err(|e| client_failure(e, "sending the room requests"))?;
    session.disconnect().await;

    let action_name = if args.leave { "leave" } else { "join" };
    if args.client.json {
        let rooms: Vec<_> = chats
            .iter()
            .zip(&outcomes)
            .map(|(chat, outcome)| {
                let mut r = json!({"chat_id": chat.to_string(), "action": action_name, "result": outcome.word(action)});
                if let RoomOutcome::Refused(reason) = outcome {
                    r["error"] = reason.as_str().into();
                }
                r
            })
            .collect();
        println!("{}", json!({ "rooms": rooms }));
    } else {
        let style = Style::for_stdout();
        for (chat, outcome) in chats.iter().zip(&outcomes) {
            let word = format!("{:<11}", outcome.word(action));
            match outcome {
                RoomOutcome::Done => println!("{} {chat}", style.paint("32", &word)),
                RoomOutcome::Refused(reason) => {
                    println!("{} {chat}  {reason}", style.paint("31", &word))
                }
                RoomOutcome::Unconfirmed => println!("{} {chat}", style.paint("33", &word)),
            }
        }
        if outcomes.contains(&RoomOutcome::Unconfirmed) {
            println!(
                "note: no acknowledgement within {:?}: {NO_CONFIRMATION}",
                args.ack_wait
            );
        }
    }
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, RoomOutcome::Refused(_)))
        .count();
    if refused > 0 {
        return Err(CommandError::new(
            ExitCode::Failure,
            format!(
                "the server refused {refused} of {} room requests\n  try: check that the chat exists and that this user takes part in it",
                outcomes.len()
            ),
        )
        .into());
    }
    Ok(ExitCode::Ok)
}
