//! Command-line options of each scenario and their conversion into the
//! scenarios' settings.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    matrix::RegistrationAuth,
    scenario::{
        ceiling::CeilingConfig, fanout::FanoutConfig, initial_sync::InitialSyncConfig,
        mixed::MixedConfig, send::SendConfig,
    },
    setup::Context,
    target,
};

/// Event-loop threads of `send` when --poll-threads is not given.
const DEFAULT_POLL_THREADS: u32 = 2;

/// Load generator for Matrix homeservers, using the Client-Server API only.
///
/// Every run is bounded in requests and in time, and stops by itself.
#[derive(Debug, Parser)]
#[command(name = "eltrix-loadtest", version)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Register users, create and join public rooms, then send m.room.message
    /// events, closed-loop or at --rate, and report throughput, latency and
    /// errors.
    ///
    /// Exits with status 1 when setup fails or no request succeeds.
    Send(SendArgs),
    /// One sender sends --messages messages at --rate into a room whose
    /// --members members long-poll /sync, and the report gives the time from
    /// the send's 200 response to the event's arrival in each member's sync.
    Fanout(FanoutArgs),
    /// Users joined to --rooms rooms with --messages-per-room messages each
    /// make initial syncs, and the report gives their latency and size.
    InitialSync(InitialSyncArgs),
    /// Workers run a mix of sends (60%), incremental syncs (25%), /messages
    /// pages (10%) and joins (5%) over rooms of Zipf-distributed sizes.
    Mixed(MixedArgs),
    /// Closed-loop GET /_matrix/client/versions, the HTTP ceiling against
    /// which the other scenarios can be read.
    Ceiling(CeilingArgs),
}

/// Options of every scenario: the target and the output.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Homeserver base URL, http://HOST:PORT. Only loopback hosts
    /// (127.0.0.0/8, [::1], localhost) are accepted unless --allow-remote is set.
    #[arg(long)]
    pub url: String,
    /// Accept a --url host that is not a loopback address. Load-test only
    /// servers that you run.
    #[arg(long)]
    pub allow_remote: bool,
    /// Timeout of each HTTP request, from connecting to the last response
    /// byte, in milliseconds. A long-polling /sync gets its sync timeout on top.
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    pub timeout_ms: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Options of the scenarios that register users.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Seed of every random choice. Runs with the same seed and options make
    /// the same choices. The seed is also part of each username.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Registration token for the m.login.registration_token stage. Without
    /// it, users register with the m.login.dummy stage.
    #[arg(long)]
    pub registration_token: Option<String>,
    /// Username prefix of 1 to 64 characters from a-z, 0-9, '.', '_' and '-'.
    /// The seed, the start time in Unix milliseconds and the user number follow it.
    #[arg(long, default_value = "loadtest", value_parser = parse_user_prefix)]
    pub user_prefix: String,
    /// JSON file of the users (user ID, access token, device ID) and rooms
    /// that setup created. If the file exists, the run reuses them instead of
    /// registering; it must come from the same scenario, setup options and
    /// --url. Otherwise setup writes it, readable by its owner only.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Number of users to register.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Number of public rooms that the first user creates and every other user joins.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rooms: u32,
    /// Number of senders, each with its own keep-alive connection and one
    /// request in flight. Sender N sends as user N mod --users. Setup uses as
    /// many parallel connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Number of threads that run the senders, each with one event loop
    /// (epoll) over its share of the senders' connections. At most
    /// --concurrency. Defaults to 2, or to 1 when --concurrency is 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub poll_threads: Option<u32>,
    /// Stop after this many sends in total, successful or not.
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000)
    )]
    pub messages: u64,
    /// Stop sending after this many seconds, even if --messages is not reached.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Sends per second over all senders, on a fixed schedule; latency is
    /// measured from each send's due time. Without it, senders send
    /// closed-loop.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Number of room members, each long-polling /sync on its own connection.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub members: u32,
    /// Number of threads that run the members' long-polls, each with one
    /// event loop (epoll) over its share of the members' connections. At most
    /// --members.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub poll_threads: u32,
    /// Number of messages the sender sends.
    #[arg(
        long,
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub messages: u64,
    /// Messages per second that the sender sends, on a fixed schedule.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Parallel connections for registering and joining the members and for
    /// their initial syncs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Timeline limit of the members' sync filter.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub timeline_limit: u32,
    /// Seconds from the start of the members' long-polls within which the
    /// sender sends; sends still due after it are not made.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Milliseconds that members keep syncing after the last send for
    /// deliveries still missing.
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=600_000)
    )]
    pub drain_ms: u64,
}

#[derive(Debug, Args)]
pub struct InitialSyncArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Number of users, each joined to every room.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Number of rooms that the first user creates.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rooms: u32,
    /// Messages sent into each room during setup, by its members in turn.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub messages_per_room: u32,
    /// Timeline limit of the sync filter.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub timeline_limit: u32,
    /// Number of initial syncs of each user.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub repeats: u32,
    /// Parallel connections, for setup and for the syncs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Stop syncing after this many seconds, even if not every sync was made.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
}

#[derive(Debug, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Number of users.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Number of rooms. Room K starts with about --users / (K + 1)^s members.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rooms: u32,
    /// Number of worker threads, each with its own connection, acting as
    /// every --concurrency-th user. Setup uses as many parallel connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Stop after this many requests in total.
    #[arg(
        long,
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000)
    )]
    pub requests: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Requests per second over all workers, on a fixed schedule. Without it,
    /// workers run closed-loop.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Exponent s of the Zipf weights 1 / (K + 1)^s that set the size of room
    /// K and how often it is chosen; 0 makes all rooms equal.
    #[arg(long, default_value_t = 1.0, value_parser = parse_exponent)]
    pub zipf_exponent: f64,
}

#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Number of connections, each with one request in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Stop after this many requests in total.
    #[arg(
        long,
        default_value_t = 10_000_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000)
    )]
    pub requests: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
}

fn parse_user_prefix(prefix: &str) -> Result<String, String> {
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
        return Err("expected 1 to 64 characters of a-z, 0-9, '.', '_' and '-'".to_owned());
    }
    Ok(prefix.to_owned())
}

/// Parses a rate in requests per second, above 0 and at most one million.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 1e6 => Ok(rate),
        _ => Err("expected requests per second, above 0 and at most 1000000".to_owned()),
    }
}

/// Parses a Zipf exponent from 0 to 10.
fn parse_exponent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(exponent) if (0.0..=10.0).contains(&exponent) => Ok(exponent),
        _ => Err("expected a number from 0 to 10".to_owned()),
    }
}

impl TargetArgs {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Builds the run context; fails on an invalid or non-loopback URL.
    pub fn context(&self, accounts: &AccountArgs) -> Result<Context, String> {
        Ok(Context {
            url: self.url.clone(),
            target: target::resolve(&self.url, self.allow_remote)?,
            timeout: self.timeout(),
            seed: accounts.seed,
            auth: accounts
                .registration_token
                .clone()
                .map_or(RegistrationAuth::Dummy, RegistrationAuth::Token),
            user_prefix: accounts.user_prefix.clone(),
            state_path: accounts.state.clone(),
        })
    }
}

impl SendArgs {
    /// Builds the settings; fails when --poll-threads exceeds --concurrency.
    pub fn config(&self) -> Result<SendConfig, String> {
        let poll_threads = match self.poll_threads {
            Some(threads) if threads > self.concurrency => {
                return Err(format!(
                    "invalid --poll-threads {threads}: expected at most --concurrency ({})",
                    self.concurrency
                ));
            }
            Some(threads) => threads,
            None => DEFAULT_POLL_THREADS.min(self.concurrency),
        };
        Ok(SendConfig {
            users: self.users,
            rooms: self.rooms,
            concurrency: self.concurrency,
            poll_threads,
            messages: self.messages,
            duration: Duration::from_secs(self.duration),
            rate: self.rate,
        })
    }
}

impl FanoutArgs {
    /// Builds the settings; fails when --poll-threads exceeds --members.
    pub fn config(&self) -> Result<FanoutConfig, String> {
        if self.poll_threads > self.members {
            return Err(format!(
                "invalid --poll-threads {}: expected at most --members ({})",
                self.poll_threads, self.members
            ));
        }
        Ok(FanoutConfig {
            members: self.members,
            messages: self.messages,
            rate: self.rate,
            concurrency: self.concurrency,
            timeline_limit: self.timeline_limit,
            poll_threads: self.poll_threads,
            duration: Duration::from_secs(self.duration),
            drain: Duration::from_millis(self.drain_ms),
        })
    }
}

impl InitialSyncArgs {
    pub fn config(&self) -> InitialSyncConfig {
        InitialSyncConfig {
            users: self.users,
            rooms: self.rooms,
            messages_per_room: self.messages_per_room,
            timeline_limit: self.timeline_limit,
            repeats: self.repeats,
            concurrency: self.concurrency,
            duration: Duration::from_secs(self.duration),
        }
    }
}

impl MixedArgs {
    pub fn config(&self) -> MixedConfig {
        MixedConfig {
            users: self.users,
            rooms: self.rooms,
            concurrency: self.concurrency,
            requests: self.requests,
            duration: Duration::from_secs(self.duration),
            rate: self.rate,
            zipf_exponent: self.zipf_exponent,
        }
    }
}

impl CeilingArgs {
    pub fn config(&self) -> Result<CeilingConfig, String> {
        Ok(CeilingConfig {
            url: self.target.url.clone(),
            target: target::resolve(&self.target.url, self.target.allow_remote)?,
            timeout: self.target.timeout(),
            concurrency: self.concurrency,
            requests: self.requests,
            duration: Duration::from_secs(self.duration),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Scenario, parse_exponent, parse_rate, parse_user_prefix};

    #[test]
    fn rate_must_be_positive() {
        assert_eq!(parse_rate("3000"), Ok(3000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for text in ["0", "-1", "abc", "inf", "NaN", "2000000"] {
            assert!(parse_rate(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn exponent_range() {
        assert_eq!(parse_exponent("0"), Ok(0.0));
        assert_eq!(parse_exponent("1.2"), Ok(1.2));
        assert!(parse_exponent("-0.5").is_err());
        assert!(parse_exponent("11").is_err());
    }

    #[test]
    fn user_prefix_charset() {
        assert!(parse_user_prefix("load.test_1-a").is_ok());
        assert!(parse_user_prefix("").is_err());
        assert!(parse_user_prefix("Upper").is_err());
        assert!(parse_user_prefix(&"a".repeat(65)).is_err());
    }

    #[test]
    fn every_scenario_parses() {
        let url = "http://127.0.0.1:8008";
        for args in [
            vec!["send", "--url", url, "--rate", "100"],
            vec![
                "fanout",
                "--url",
                url,
                "--members",
                "1000",
                "--state",
                "s.json",
            ],
            vec!["initial-sync", "--url", url, "--timeline-limit", "5"],
            vec!["mixed", "--url", url, "--zipf-exponent", "0.8"],
            vec!["ceiling", "--url", url, "--duration", "1"],
        ] {
            let argv = std::iter::once("eltrix-loadtest").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
        let ceiling_with_state = ["eltrix-loadtest", "ceiling", "--url", url, "--state", "x"];
        assert!(Cli::try_parse_from(ceiling_with_state).is_err());
    }

    fn fanout_args(extra: &[&str]) -> super::FanoutArgs {
        let base = ["eltrix-loadtest", "fanout", "--url", "http://127.0.0.1:1"];
        let argv = base.iter().chain(extra).copied();
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                scenario: Scenario::Fanout(args),
            }) => args,
            other => panic!("fanout {extra:?} did not parse: {other:?}"),
        }
    }

    #[test]
    fn poll_threads_default_and_bounds() {
        assert_eq!(fanout_args(&[]).config().unwrap().poll_threads, 2);
        let one = fanout_args(&["--members", "3", "--poll-threads", "1"]);
        assert_eq!(one.config().unwrap().poll_threads, 1);
        let all = fanout_args(&["--members", "3", "--poll-threads", "3"]);
        assert_eq!(all.config().unwrap().poll_threads, 3);

        let too_many = fanout_args(&["--members", "3", "--poll-threads", "4"]);
        let error = too_many.config().unwrap_err();
        assert!(error.contains("--poll-threads 4"), "{error}");
        let zero = [
            "eltrix-loadtest",
            "fanout",
            "--url",
            "http://[::1]:1",
            "--poll-threads",
            "0",
        ];
        assert!(Cli::try_parse_from(zero).is_err());
    }

    #[test]
    fn send_without_rate_is_closed_loop() {
        let cli = Cli::try_parse_from(["eltrix-loadtest", "send", "--url", "http://[::1]:1"]);
        let Ok(Cli {
            scenario: Scenario::Send(args),
        }) = cli
        else {
            panic!("send did not parse");
        };
        let config = args.config().unwrap();
        assert_eq!(config.rate, None);
        assert_eq!(config.messages, 1000);
    }

    fn send_args(extra: &[&str]) -> super::SendArgs {
        let base = ["eltrix-loadtest", "send", "--url", "http://127.0.0.1:1"];
        let argv = base.iter().chain(extra).copied();
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                scenario: Scenario::Send(args),
            }) => args,
            other => panic!("send {extra:?} did not parse: {other:?}"),
        }
    }

    #[test]
    fn send_poll_threads_default_and_bounds() {
        assert_eq!(send_args(&[]).config().unwrap().poll_threads, 2);
        let single = send_args(&["--concurrency", "1"]);
        assert_eq!(single.config().unwrap().poll_threads, 1);
        let one = send_args(&["--concurrency", "3", "--poll-threads", "1"]);
        assert_eq!(one.config().unwrap().poll_threads, 1);
        let all = send_args(&["--concurrency", "3", "--poll-threads", "3"]);
        assert_eq!(all.config().unwrap().poll_threads, 3);

        let too_many = send_args(&["--concurrency", "3", "--poll-threads", "4"]);
        let error = too_many.config().unwrap_err();
        assert!(error.contains("--poll-threads 4"), "{error}");
        assert!(error.contains("--concurrency (3)"), "{error}");
        let zero = [
            "eltrix-loadtest",
            "send",
            "--url",
            "http://[::1]:1",
            "--poll-threads",
            "0",
        ];
        assert!(Cli::try_parse_from(zero).is_err());
    }
}
