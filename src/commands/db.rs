//! `db check`, `db install-notify`, `db uninstall-notify`: SC Market's PostgreSQL as `serve`
//! needs it. Nothing here creates, alters or drops a table; the notify trigger is the one
//! object these commands add, and only when asked.

use crate::cli::{DbArgs, DbCommand};
use crate::exit::{CommandError, ExitCode};
use crate::server::PoolConfig;
use crate::server::open::connect_error;
use crate::store::PostgresStore;
use crate::store::postgres::{self, notify, schema};

pub async fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Check(args) => check(args).await,
        DbCommand::InstallNotify(args) => {
            let store = connect(&args).await?;
            let mut client = store.client().await.map_err(connect_error)?;
            if schema::check(&**client)
                .await?
                .existing_tables
                .iter()
                .all(|t| *t != "messages")
            {
                return Err(CommandError::new(
                    ExitCode::Failure,
                    "there is no messages table to put the trigger on (`scmarket-ws db check`)",
                )
                .into());
            }
            notify::install(&mut client).await?;
            println!(
                "installed: trigger {} on messages notifies channel {} of every new row",
                notify::TRIGGER,
                notify::CHANNEL
            );
            println!("restart serve so it listens and emits every message once");
            Ok(ExitCode::Ok)
        }
        DbCommand::UninstallNotify(args) => {
            let store = connect(&args).await?;
            let mut client = store.client().await.map_err(connect_error)?;
            notify::uninstall(&mut client).await?;
            println!(
                "removed: trigger {} and function {}() (if they were there)",
                notify::TRIGGER,
                notify::FUNCTION
            );
            println!("restart serve so it emits the messages it stores itself again");
            Ok(ExitCode::Ok)
        }
    }
}

async fn connect(args: &DbArgs) -> anyhow::Result<PostgresStore> {
    if !postgres::is_postgres_url(&args.database) {
        return Err(CommandError::usage(format!(
            "--database {:?}: db commands work on PostgreSQL (postgres://USER@HOST/DATABASE)",
            args.database
        ))
        .into());
    }
    let pool = PoolConfig {
        size: 1,
        warm: Some(0),
        connect_timeout: args.db_connect_timeout,
        wait_timeout: args.db_connect_timeout,
        query_timeout: args.db_connect_timeout,
    };
    Ok(PostgresStore::connect(&args.database, &pool)
        .await
        .map_err(connect_error)?)
}

async fn check(args: DbArgs) -> anyhow::Result<ExitCode> {
    let store = connect(&args).await?;
    let client = store.client().await.map_err(connect_error)?;
    let report = schema::check(&**client).await?;
    println!("database {}", postgres::redact(&args.database));
    for (table, columns) in schema::REQUIRED {
        let problems: Vec<_> = report
            .problems
            .iter()
            .filter(|p| match p {
                schema::Problem::MissingTable(t) => t == table,
                schema::Problem::MissingColumn { table: t, .. }
                | schema::Problem::WrongType { table: t, .. } => t == table,
            })
            .collect();
        if problems.is_empty() {
            println!("ok       {table} ({} columns)", columns.len());
        }
        for problem in problems {
            println!("MISSING  {problem}");
        }
    }
    if report.notify_installed {
        println!(
            "ok       notify trigger {} installed: serve emits every new message",
            notify::TRIGGER
        );
    } else {
        println!(
            "absent   notify trigger: serve emits only the messages it stores itself \
             (`scmarket-ws db install-notify` adds it)"
        );
    }
    if report.usable() {
        println!("result: serve can run on this database");
        Ok(ExitCode::Ok)
    } else {
        println!(
            "result: serve cannot run on this database ({} problems)",
            report.problems.len()
        );
        Ok(ExitCode::Failure)
    }
}
