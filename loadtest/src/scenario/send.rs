//! The `send` scenario: register users, create and join rooms, then send
//! `m.room.message` events from worker threads, closed-loop or at a fixed
//! `--rate`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    pacing::{Pacer, Pacing},
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    rng::pick_room,
    scenario::{merge_tallies, pause_after, run_threads},
    setup::{self, Context, World},
    tally::{Recorder, Tally},
};

/// Settings of one `send` run, already validated.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub users: u32,
    pub rooms: u32,
    pub concurrency: u32,
    pub messages: u64,
    pub duration: Duration,
    /// Sends per second over all workers; `None` for closed loop.
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

fn send_messages(
    ctx: &Context,
    config: &SendConfig,
    world: &World,
) -> Result<(Tally, Duration), String> {
    let start = Instant::now();
    let pacing = Pacing::new(config.rate, start, u64::from(config.concurrency));
    let deadline = start + config.duration;
    // Transaction IDs must differ from those of earlier runs that reused the
    // same access tokens, or the server would return the earlier events.
    let run_id = setup::unix_millis();
    let progress = Progress::default();

    let (tallies, elapsed) =
        run_threads("send", config.concurrency as usize, &progress, |worker| {
            let mut pacer = Pacer::new(&pacing, worker as u64, config.messages, deadline);
            let mut recorder = Recorder::new(&progress);
            // Worker `w` sends as user `w mod users`.
            let session = &world.users[worker % world.users.len()];
            let mut client = ctx.client();
            while let Some(slot) = pacer.next_slot() {
                recorder.start_lag(slot.start_lag);
                let room_id = &world.rooms[pick_room(ctx.seed, slot.index, world.rooms.len())];
                let txn_id = format!("{run_id}-{}", slot.index);
                let text = format!("loadtest message {}", slot.index);
                match client.send_text(&session.access_token, room_id, &txn_id, &text) {
                    Ok(_) => recorder.success("send", slot.origin.elapsed()),
                    Err(error) => {
                        recorder.failure("send", &error, room_id);
                        pause_after(&error);
                    }
                }
            }
            let mut tally = recorder.finish();
            tally.missed = pacer.missed();
            tally
        })?;
    Ok((merge_tallies(tallies), elapsed))
}
