use std::io::IsTerminal;
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use scmarket_ws::cli::{Cli, Command};
use scmarket_ws::commands;
use scmarket_ws::exit::{self, ExitCode};

/// `--features mimalloc` swaps glibc malloc for mimalloc (docs/BENCHMARKS.md, "Allocator").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ProcessExit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout with exit 0 and usage errors with exit 2.
            let _ = e.print();
            if !e.use_stderr() {
                return ProcessExit::from(0);
            }
            // The flags did not parse, so whether JSON was asked for is read from the words.
            if std::env::args().any(|a| a == "--json") {
                let error = exit::CommandError::usage(e.kind().to_string());
                println!("{}", exit::failure_json(&error.into()));
            }
            return ProcessExit::from(ExitCode::Usage as u8);
        }
    };
    let json = cli.command.json_output();
    init_logging(cli.verbose, cli.quiet);
    // Read while the process has one thread: the local offset cannot be read safely later.
    commands::init_local_offset();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::LoadTest(args) = &cli.command
        && let Some(threads) = args.threads
    {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ProcessExit::from(ExitCode::Failure as u8);
        }
    };
    match runtime.block_on(run(cli.command, cli.quiet)) {
        Ok(code) => ProcessExit::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            if json {
                println!("{}", exit::failure_json(&e));
            }
            ProcessExit::from(exit::code_for(&e) as u8)
        }
    }
}

async fn run(command: Command, quiet: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => commands::serve::run(args).await.map(|_| ExitCode::Ok),
        Command::SessionCookie(args) => commands::session_cookie::run(args)
            .await
            .map(|_| ExitCode::Ok),
        Command::Db(command) => commands::db::run(command).await,
        Command::Connect(args) => commands::connect::run(args).await,
        Command::Join(args) => commands::join::run(args).await,
        Command::Listen(args) => commands::listen::run(args).await,
        Command::Spec(args) => commands::spec::run(args),
        Command::LoadTest(args) => commands::load_test::run(args, !quiet).await,
        Command::Report(args) => commands::report::run(args),
        Command::Check(args) => commands::check::run(args).await,
        Command::Completions(args) => commands::completions::run(&args).map(|_| ExitCode::Ok),
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // tungstenite traces whole handshake requests, Cookie header included; secrets stay out of logs.
    if let Ok(quiet_handshake) = "tungstenite::handshake=warn".parse() {
        filter = filter.add_directive(quiet_handshake);
    }
    // Colour codes only for a person at a terminal: a log file or a CI capture gets plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}
