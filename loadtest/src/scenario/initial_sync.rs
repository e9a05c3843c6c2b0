//! The `initial-sync` scenario: users joined to many rooms with some history
//! each make an initial `/sync` (no `since`), the request a client makes at
//! login, and the report gives its latency and response size.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::{
    matrix::{SyncRequest, joined_room_count},
    pacing::{Pacer, Pacing},
    progress::Progress,
    report::{Report, ReportHeader, Sizes, StopReason, new_size_histogram, record_size},
    scenario::{merge_tallies, pause_after, run_threads},
    setup::{self, Context, World},
    tally::{Recorder, Tally},
};

/// Settings of one `initial-sync` run, already validated.
#[derive(Debug, Clone)]
pub struct InitialSyncConfig {
    pub users: u32,
    pub rooms: u32,
    pub messages_per_room: u32,
    pub timeline_limit: u32,
    pub repeats: u32,
    pub concurrency: u32,
    pub duration: Duration,
}

pub fn run(ctx: &Context, config: &InitialSyncConfig) -> Result<Report, String> {
    let setup_options = json!({
        "users": config.users,
        "rooms": config.rooms,
        "messages_per_room": config.messages_per_room,
    });
    let (world, setup) = setup::load_or_create(ctx, "initial-sync", &setup_options, || {
        create_world(ctx, config)
    })?;
    eprintln!("setup done in {:.2} s; syncing", setup.seconds);

    let (tally, sizes, elapsed) = sync_all(ctx, config, &world)?;
    let limit = u64::from(config.users) * u64::from(config.repeats);
    let stopped_by = StopReason::from_count(tally.succeeded() + tally.failed(), limit);
    let header = ReportHeader {
        scenario: "initial-sync",
        url: ctx.url.clone(),
        seed: Some(ctx.seed),
        parameters: json!({
            "users": config.users,
            "rooms": config.rooms,
            "messages_per_room": config.messages_per_room,
            "timeline_limit": config.timeline_limit,
            "repeats": config.repeats,
            "concurrency": config.concurrency,
            "duration_s": config.duration.as_secs(),
            "timeout_ms": ctx.timeout.as_millis(),
        }),
        setup: Some(setup),
    };
    let mut report = Report::new(header, elapsed, stopped_by, &tally, None);
    report.response_bytes = Sizes::from_histogram(&sizes);
    Ok(report)
}

/// Registers the users; the first creates the rooms, the others join all of
/// them, and each room gets `messages_per_room` messages from its members in
/// turn.
fn create_world(ctx: &Context, config: &InitialSyncConfig) -> Result<World, String> {
    let users = setup::register_users(ctx, config.users, config.concurrency)?;
    let rooms = setup::create_rooms(ctx, &users[0], config.rooms, config.concurrency)?;
    let joins = setup::all_joins(users.len(), rooms.len());
    setup::join_pairs(ctx, &users, &rooms, &joins, config.concurrency)?;

    let run_id = setup::unix_millis();
    let messages: Vec<(usize, u32)> = (0..rooms.len())
        .flat_map(|room| (0..config.messages_per_room).map(move |n| (room, n)))
        .collect();
    let sender_of = |room: usize, n: u32| &users[(room + n as usize) % users.len()];
    setup::parallel_map(
        ctx,
        &messages,
        config.concurrency,
        |client, &(room, n)| {
            let txn_id = format!("seed-{run_id}-{room}-{n}");
            let text = format!("loadtest history {n}");
            let token = &sender_of(room, n).access_token;
            client.send_text(token, &rooms[room], &txn_id, &text)
        },
        |&(room, n)| format!("{} sending to {}", sender_of(room, n).user_id, rooms[room]),
    )?;
    eprintln!("sent {} messages", messages.len());
    Ok(World { users, rooms })
}

/// Runs `repeats` initial syncs of every user, closed-loop on
/// `concurrency` connections.
fn sync_all(
    ctx: &Context,
    config: &InitialSyncConfig,
    world: &World,
) -> Result<(Tally, Histogram<u64>, Duration), String> {
    let filter = json!({
        "room": {
            "timeline": { "limit": config.timeline_limit },
            "state": { "lazy_load_members": true },
        },
    })
    .to_string();
    let request = SyncRequest {
        filter: &filter,
        since: None,
        timeout_ms: 0,
    };
    let limit = u64::from(config.users) * u64::from(config.repeats);
    let start = Instant::now();
    let pacing = Pacing::new(None, start, u64::from(config.concurrency));
    let deadline = start + config.duration;
    let progress = Progress::default();

    let (results, elapsed) = run_threads(
        "initial-sync",
        config.concurrency as usize,
        &progress,
        |worker| {
            let mut pacer = Pacer::new(&pacing, worker as u64, limit, deadline);
            let mut recorder = Recorder::new(&progress);
            let mut sizes = new_size_histogram();
            let mut client = ctx.client();
            while let Some(slot) = pacer.next_slot() {
                // Consecutive indices go to different users, so the repeats
                // of one user are spread over the phase.
                let index = usize::try_from(slot.index).unwrap_or(0);
                let session = &world.users[index % world.users.len()];
                match client.sync(&session.access_token, &request, None) {
                    Ok(response) => {
                        let latency = slot.origin.elapsed();
                        record_size(&mut sizes, response.body_bytes);
                        let joined = joined_room_count(&response.body);
                        if joined < world.rooms.len() {
                            recorder.invalid("initial_sync", "missing rooms", || {
                                format!(
                                    "{}: {joined} of {} joined rooms in the response",
                                    session.user_id,
                                    world.rooms.len()
                                )
                            });
                        } else {
                            recorder.success("initial_sync", latency);
                        }
                    }
                    Err(error) => {
                        recorder.failure("initial_sync", &error, &session.user_id);
                        pause_after(&error);
                    }
                }
            }
            (recorder.finish(), sizes)
        },
    )?;

    let mut sizes = new_size_histogram();
    let mut tallies = Vec::with_capacity(results.len());
    for (tally, worker_sizes) in results {
        // Both histograms come from `new_size_histogram`, so their bounds
        // match and `add` cannot fail.
        let _ = sizes.add(&worker_sizes);
        tallies.push(tally);
    }
    Ok((merge_tallies(tallies), sizes, elapsed))
}
