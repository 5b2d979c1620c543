//! `spec websocket | merge | check | asyncapi`: generate, merge and check the API documents.

use std::path::Path;

use serde_json::Value;

use crate::apidoc::{asyncapi, check, document, merge, upgrade, validate, websocket};
use crate::cli::{OnConflict, SpecArgs, SpecCommand, SpecMergeArgs, SpecOutputArgs};
use crate::exit::{CommandError, ExitCode};

pub fn run(args: SpecArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SpecCommand::Websocket(out) => emit(&websocket::document(), &out),
        SpecCommand::Asyncapi(out) => emit(&asyncapi::document(), &out),
        SpecCommand::Merge(merge_args) => run_merge(merge_args),
        SpecCommand::Check(check_args) => run_check(&check_args.file),
    }
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    CommandError::usage(e.to_string()).into()
}

fn emit(doc: &Value, out: &SpecOutputArgs) -> anyhow::Result<ExitCode> {
    let path = out.output.as_deref();
    let text = document::render(doc, document::pick_format(out.format.map(Into::into), path))?;
    document::write_text(&text, path).map_err(usage)?;
    Ok(ExitCode::Ok)
}

fn run_merge(args: SpecMergeArgs) -> anyhow::Result<ExitCode> {
    let mut doc = document::read_openapi(&args.base).map_err(usage)?;
    let parts = match &args.websocket {
        None => websocket::parts(),
        Some(path) => {
            let ws = document::read_value(path).map_err(usage)?;
            websocket::parts_from_document(&ws).map_err(|e| {
                usage(format!(
                    "{}: not websocket documentation: {e}",
                    path.display()
                ))
            })?
        }
    };
    let base_name = args.base.display().to_string();

    let report = merge::merge(&mut doc, &parts).map_err(|e| usage(format!("{base_name}: {e}")))?;
    for section in &report.created {
        eprintln!("spec merge: {base_name} had no {section}; created it");
    }
    for o in &report.overwritten {
        eprintln!(
            "spec merge: overwrote {} (the base's value differs from the websocket docs)",
            o.pointer
        );
    }
    if args.on_conflict == OnConflict::Error && !report.overwritten.is_empty() {
        return Err(CommandError::new(
            ExitCode::Failure,
            format!(
                "{} key(s) of {base_name} would be overwritten (listed above) and --on-conflict is \
                 error; nothing was written. Remove them from the base or use --on-conflict warn.",
                report.overwritten.len()
            ),
        )
        .into());
    }

    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let below_3_1 = document::version_of(version).is_some_and(|v| v < (3, 1));
    match &args.openapi_version {
        Some(target) => {
            let target_v = document::version_of(target).unwrap_or((3, 1));
            if document::version_of(version).is_some_and(|v| v > target_v) {
                eprintln!(
                    "spec merge: {base_name} is already OpenAPI {version}; --openapi-version {target} \
                     leaves it as it is"
                );
            } else {
                let up = upgrade::upgrade(&mut doc, target);
                eprintln!(
                    "spec merge: raised openapi {} -> {}; converted {} nullable schema(s) and {} \
                     boolean exclusiveMinimum/exclusiveMaximum",
                    up.from, up.to, up.nullable_converted, up.exclusive_converted
                );
            }
        }
        None if below_3_1 => eprintln!(
            "warning: {base_name} is OpenAPI {version}, but `webhooks` and `type: [..., \"null\"]` \
             need OpenAPI 3.1; the result is not a valid {version} document. Pass \
             --openapi-version 3.1.0 to raise it (and convert `nullable`)."
        ),
        None => {}
    }

    let unresolved = validate::unresolved_refs(&doc);
    if !unresolved.is_empty() {
        let list: Vec<String> = unresolved.iter().map(|u| format!("  {u}")).collect();
        return Err(CommandError::new(
            ExitCode::Failure,
            format!(
                "the merged document has {} $ref(s) that do not resolve; nothing was written:\n{}",
                unresolved.len(),
                list.join("\n")
            ),
        )
        .into());
    }
    emit(&doc, &args.output)
}

fn run_check(file: &Path) -> anyhow::Result<ExitCode> {
    let doc = document::read_openapi(file).map_err(usage)?;
    let diffs = check::compare(&doc, &websocket::parts());
    let name = file.display().to_string();
    if diffs.is_empty() {
        println!("{name}: the websocket part matches `scmarket-ws spec websocket`");
        return Ok(ExitCode::Ok);
    }
    let text = check::render(&diffs, &name);
    print!("{text}");
    eprintln!(
        "{name}: the websocket part differs from the generated docs in {} place(s); regenerate it \
         with `scmarket-ws spec merge` (or `spec websocket`)",
        diffs.len()
    );
    Ok(ExitCode::Failure)
}
