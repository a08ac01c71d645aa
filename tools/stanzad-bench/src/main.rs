//! `stanzad-bench`: a load generator for XMPP servers on loopback addresses (stanzad,
//! Prosody, ejabberd). See docs/performance.md.
//!
//! Exit status: 0 when the run succeeded, 1 when it measured failures (failed logins,
//! lost messages, …), 2 for bad arguments or setup errors, 3 when the hard stop fired.

mod accounts;
mod auth;
mod cli;
mod client;
mod ctx;
mod error;
mod negotiate;
mod net;
mod procfs;
mod progress;
mod report;
mod salt_cache;
mod scenarios;
mod session;
mod stats;
mod tls;
mod transport;
mod xmpp;

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cli::{Cli, Command, Common};
use report::Report;

/// Time past `--max-secs` after which the run is abandoned.
const HARD_STOP_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::AccountsFile(a) = &cli.command {
        let mut out = std::io::stdout().lock();
        return match accounts::write_file(&mut out, &a.prefix, a.first, a.count, &a.domain, &a.password) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(2, &e.to_string()),
        };
    }
    let Some(common) = common(&cli.command) else { return fail(2, "no scenario") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::try_from(common.threads).unwrap_or(1))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return fail(2, &format!("runtime: {e}")),
    };
    procfs::raise_fd_limit();
    let outcome = runtime.block_on(run(&cli.command, common));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(report) => finish(&report, common),
        Err((code, message)) => fail(code, &message),
    }
}

fn common(command: &Command) -> Option<&Common> {
    match command {
        Command::Login(a) => Some(&a.common),
        Command::Msg(a) => Some(&a.common),
        Command::Offline(a) => Some(&a.common),
        Command::Idle(a) => Some(&a.common),
        Command::Query(a) => Some(&a.common),
        Command::Register(a) => Some(&a.common),
        Command::AccountsFile(_) => None,
    }
}

/// Connections the scenario opens in total (for the choice of source addresses).
fn connections(command: &Command) -> u64 {
    match command {
        Command::Login(a) => a.count,
        Command::Msg(a) => 2 * a.pairs,
        Command::Offline(_) => 3,
        Command::Idle(a) => a.count,
        Command::Query(_) => 4,
        Command::Register(a) => a.count,
        Command::AccountsFile(_) => 0,
    }
}

async fn run(command: &Command, common: &Common) -> Result<Report, (u8, String)> {
    command.check().map_err(|e| (2, e))?;
    let ctx = Arc::new(ctx::Ctx::new(common, connections(command)).map_err(|e| (2, e))?);
    let scenario = async {
        match command {
            Command::Login(a) => scenarios::login::run(ctx.clone(), a).await,
            Command::Msg(a) => scenarios::msg::run(ctx.clone(), a).await,
            Command::Offline(a) => scenarios::offline::run(ctx.clone(), a).await,
            Command::Idle(a) => scenarios::idle::run(ctx.clone(), a).await,
            Command::Query(a) => scenarios::query::run(ctx.clone(), a).await,
            Command::Register(a) => scenarios::register::run(ctx.clone(), a).await,
            Command::AccountsFile(_) => Report::new("accounts-file"),
        }
    };
    let limit = Duration::from_secs(common.max_secs) + HARD_STOP_GRACE;
    tokio::time::timeout(limit, scenario).await.map_err(|_| (3, "hard stop: --max-secs exceeded".to_owned()))
}

fn finish(report: &Report, common: &Common) -> ExitCode {
    print!("{}", report.table());
    if let Some(path) = &common.json {
        if let Err(e) = report.write_json(path) {
            return fail(2, &format!("{}: {e}", path.display()));
        }
    }
    ExitCode::from(if report.ok { 0 } else { 1 })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("stanzad-bench: {message}");
    ExitCode::from(code)
}
