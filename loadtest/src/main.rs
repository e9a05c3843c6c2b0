//! `eltrix-loadtest`: a load generator that drives a Matrix homeserver
//! through the standard Client-Server API only, so it can measure Eltrix and
//! other homeservers alike.

mod cli;
mod delivery;
mod http;
mod longpoll;
mod matrix;
mod pacing;
mod progress;
mod report;
mod rng;
mod scenario;
mod setup;
mod state;
mod sync_body;
mod tally;
mod target;

/// The load generator allocates a buffer or two per request; mimalloc keeps
/// that off the cores it shares with the server under test.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{path::Path, process::ExitCode};

use clap::Parser;

use crate::{
    cli::{Cli, Scenario},
    report::Report,
};

fn main() -> ExitCode {
    match run(&Cli::parse().scenario) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(scenario: &Scenario) -> Result<ExitCode, String> {
    let (report, json_path) = match scenario {
        Scenario::Send(args) => {
            let ctx = args.target.context(&args.accounts)?;
            (
                scenario::send::run(&ctx, &args.config()?)?,
                &args.target.json,
            )
        }
        Scenario::Fanout(args) => {
            let ctx = args.target.context(&args.accounts)?;
            (
                scenario::fanout::run(&ctx, &args.config()?)?,
                &args.target.json,
            )
        }
        Scenario::InitialSync(args) => {
            let ctx = args.target.context(&args.accounts)?;
            let report = scenario::initial_sync::run(&ctx, &args.config())?;
            (report, &args.target.json)
        }
        Scenario::Mixed(args) => {
            let ctx = args.target.context(&args.accounts)?;
            (
                scenario::mixed::run(&ctx, &args.config())?,
                &args.target.json,
            )
        }
        Scenario::Ceiling(args) => (scenario::ceiling::run(&args.config()?)?, &args.target.json),
    };

    print!("{}", report.format_table());
    if let Some(path) = json_path {
        write_json(path, &report)?;
    }
    if report.succeeded == 0 {
        eprintln!("error: no request succeeded; see the errors above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_json(path: &Path, report: &Report) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|error| format!("failed to encode the report: {error}"))?;
    std::fs::write(path, json + "\n")
        .map_err(|error| format!("failed to write {}: {error}", path.display()))
}
