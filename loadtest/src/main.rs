//! `eltrix-loadtest`: a closed-loop load generator that drives a Matrix
//! homeserver through the standard Client-Server API only, so it can measure
//! Eltrix and other homeservers alike.

mod http;
mod matrix;
mod report;
mod rng;
mod send;
mod target;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{matrix::RegistrationAuth, send::SendConfig};

/// Load generator for Matrix homeservers, using the Client-Server API.
#[derive(Debug, Parser)]
#[command(name = "eltrix-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Register users, create and join public rooms, then send m.room.message
    /// events closed-loop and report throughput, latency and errors.
    ///
    /// Exits with status 1 when setup fails or no send succeeds.
    Send(SendArgs),
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Homeserver base URL, http://HOST:PORT. Only loopback hosts
    /// (127.0.0.0/8, [::1], localhost) are accepted unless --allow-remote is set.
    #[arg(long)]
    url: String,
    /// Accept a --url host that is not a loopback address. Load-test only
    /// servers that you run.
    #[arg(long)]
    allow_remote: bool,
    /// Number of users to register.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    users: u32,
    /// Number of public rooms that the first user creates and every other user joins.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rooms: u32,
    /// Number of worker threads, each with its own keep-alive connection and
    /// one request in flight. Worker N sends as user N mod --users.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Stop after this many sends in total, successful or not.
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000)
    )]
    messages: u64,
    /// Stop sending after this many seconds, even if --messages is not reached.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Seed that picks the room of each send. Runs with the same seed and
    /// --rooms send message number N to the same room number. The seed is
    /// also part of each username.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timeout of each HTTP request, from connecting to the last response
    /// byte, in milliseconds.
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    timeout_ms: u64,
    /// Registration token for the m.login.registration_token stage. Without
    /// it, users register with the m.login.dummy stage.
    #[arg(long)]
    registration_token: Option<String>,
    /// Username prefix of 1 to 64 characters from a-z, 0-9, '.', '_' and '-'.
    /// The seed, the start time in Unix milliseconds and the user number follow it.
    #[arg(long, default_value = "loadtest", value_parser = parse_user_prefix)]
    user_prefix: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_user_prefix(prefix: &str) -> Result<String, String> {
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
        return Err("expected 1 to 64 characters of a-z, 0-9, '.', '_' and '-'".to_owned());
    }
    Ok(prefix.to_owned())
}

fn main() -> ExitCode {
    let Scenario::Send(args) = Cli::parse().scenario;
    match run_send(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_send(args: SendArgs) -> Result<ExitCode, String> {
    let target = target::resolve(&args.url, args.allow_remote)?;
    let config = SendConfig {
        url: args.url,
        target,
        users: args.users,
        rooms: args.rooms,
        concurrency: args.concurrency,
        messages: args.messages,
        duration: Duration::from_secs(args.duration),
        seed: args.seed,
        timeout: Duration::from_millis(args.timeout_ms),
        auth: args
            .registration_token
            .map_or(RegistrationAuth::Dummy, RegistrationAuth::Token),
        user_prefix: args.user_prefix,
    };

    let report = send::run(&config)?;
    print!("{}", report.format_table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|error| format!("failed to encode the report: {error}"))?;
        std::fs::write(path, json + "\n")
            .map_err(|error| format!("failed to write {}: {error}", path.display()))?;
    }
    if report.succeeded == 0 {
        eprintln!("error: no send succeeded; see the errors above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
