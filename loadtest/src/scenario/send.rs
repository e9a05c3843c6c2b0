//! The `send` scenario: register users, create and join rooms, then send
//! `m.room.message` events from `--concurrency` senders, closed-loop or at
//! a fixed `--rate`. `--poll-threads` threads each run one event loop over
//! their share of the senders, which [`sender`] drives.

mod sender;

use std::time::{Duration, Instant};

use serde_json::json;

use self::sender::{Plan, run_senders};
use crate::{
    pacing::Pacing,
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    scenario::{merge_tallies, partition, run_threads},
    setup::{self, Context, World},
    tally::Tally,
};

/// Settings of one `send` run, already validated.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub users: u32,
    pub rooms: u32,
    /// Number of senders, each with one request in flight.
    pub concurrency: u32,
    /// Threads that run the senders, from 1 to `concurrency`.
    pub poll_threads: u32,
    pub messages: u64,
    pub duration: Duration,
    /// Sends per second over all senders; `None` for closed loop.
    pub rate: Option<f64>,
}

/// Runs setup and the send phase. Fails if any setup request fails. Errors
/// during the send phase are counted in the report.
pub fn run(ctx: &Context, config: &SendConfig) -> Result<Report, String> {
    let setup_options = json!({ "users": config.users, "rooms": config.rooms });
    let (world, setup) =
        setup::load_or_create(ctx, "send", &setup_options, || create_world(ctx, config))?;
    eprintln!("setup done in {:.2} s; sending", setup.seconds);

    let (tally, elapsed) = send_messages(ctx, config, &world)?;
    let stopped_by = StopReason::from_count(tally.succeeded() + tally.failed(), config.messages);
    let header = ReportHeader {
        scenario: "send",
        url: ctx.url.clone(),
        seed: Some(ctx.seed),
        parameters: json!({
            "users": config.users,
            "rooms": config.rooms,
            "concurrency": config.concurrency,
            "poll_threads": config.poll_threads,
            "messages": config.messages,
            "duration_s": config.duration.as_secs(),
            "rate": config.rate,
            "timeout_ms": ctx.timeout.as_millis(),
        }),
        setup: Some(setup),
    };
    Ok(Report::new(
        header,
        elapsed,
        stopped_by,
        &tally,
        config.rate,
    ))
}

/// Registers the users; the first creates the rooms and the others join all.
fn create_world(ctx: &Context, config: &SendConfig) -> Result<World, String> {
    let users = setup::register_users(ctx, config.users, config.concurrency)?;
    let rooms = setup::create_rooms(ctx, &users[0], config.rooms, config.concurrency)?;
    let joins = setup::all_joins(users.len(), rooms.len());
    setup::join_pairs(ctx, &users, &rooms, &joins, config.concurrency)?;
    Ok(World { users, rooms })
}

/// Runs the send phase on `poll_threads` threads and returns the merged
/// tally and the phase's duration.
fn send_messages(
    ctx: &Context,
    config: &SendConfig,
    world: &World,
) -> Result<(Tally, Duration), String> {
    let start = Instant::now();
    let pacing = Pacing::new(config.rate, start, u64::from(config.concurrency));
    let progress = Progress::default();
    let plan = Plan {
        ctx,
        world,
        pacing: &pacing,
        messages: config.messages,
        deadline: start + config.duration,
        // Transaction IDs must differ from those of earlier runs that reused
        // the same access tokens, or the server would return the earlier
        // events.
        run_id: setup::unix_millis(),
        progress: &progress,
    };
    let groups = partition(config.concurrency as usize, config.poll_threads as usize);
    let (tallies, elapsed) = run_threads("send", groups.len(), &progress, |index| {
        run_senders(&plan, groups[index].clone())
    })?;
    let tallies = tallies.into_iter().collect::<Result<Vec<_>, String>>()?;
    Ok((merge_tallies(tallies), elapsed))
}
