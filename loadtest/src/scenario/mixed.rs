//! The `mixed` scenario: a weighted mix of the requests of active clients
//! over rooms of Zipf-distributed sizes and popularity. Each request is a
//! send (60%), an incremental `/sync` with timeout 0 (25%), a page of
//! `/messages` backwards (10%) or a join of a room not yet joined (5%).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    matrix::{Client, Session, SyncRequest, next_batch},
    pacing::{Pacer, Pacing, Slot},
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    rng::{XorShift64, pick_weighted, splitmix64, zipf_weights},
    scenario::{merge_tallies, pause_after, run_threads},
    setup::{self, Context, World},
    tally::{Recorder, Tally},
};

/// Relative weights of the operations, in the order of [`Operation`].
const OPERATION_WEIGHTS: [f64; 4] = [60.0, 25.0, 10.0, 5.0];
/// Timeline limit of the sync filter.
const SYNC_TIMELINE_LIMIT: u32 = 10;
/// `limit` of a `/messages` page.
const MESSAGES_PAGE_LIMIT: u32 = 20;

/// Settings of one `mixed` run, already validated.
#[derive(Debug, Clone)]
pub struct MixedConfig {
    pub users: u32,
    pub rooms: u32,
    pub concurrency: u32,
    pub requests: u64,
    pub duration: Duration,
    /// Requests per second over all workers; `None` for closed loop.
    pub rate: Option<f64>,
    /// Exponent `s` of the Zipf weights `1 / (k + 1)^s` of room `k`.
    pub zipf_exponent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Send,
    Sync,
    Messages,
    Join,
}

impl Operation {
    const ALL: [Self; 4] = [Self::Send, Self::Sync, Self::Messages, Self::Join];
}

/// A worker's state of one of its users.
struct UserState<'a> {
    session: &'a Session,
    /// `next_batch` of the last sync; `None` until the first sync.
    since: Option<String>,
    /// Whether the user has joined each room, by room index.
    joined: Vec<bool>,
}

pub fn run(ctx: &Context, config: &MixedConfig) -> Result<Report, String> {
    let setup_options = json!({
        "users": config.users,
        "rooms": config.rooms,
        "zipf_exponent": config.zipf_exponent,
        "seed": ctx.seed,
    });
    let (world, setup) =
        setup::load_or_create(ctx, "mixed", &setup_options, || create_world(ctx, config))?;
    // Joins of earlier runs that reused the state are part of the
    // membership, so it is read from the server rather than recomputed.
    let joined = load_memberships(ctx, &world, config.concurrency)?;
    eprintln!("setup done in {:.2} s; running the mix", setup.seconds);

    let (tally, elapsed) = run_mix(ctx, config, &world, &joined)?;
    let stopped_by = StopReason::from_count(tally.succeeded() + tally.failed(), config.requests);
    let header = ReportHeader {
        scenario: "mixed",
        url: ctx.url.clone(),
        seed: Some(ctx.seed),
        parameters: json!({
            "users": config.users,
            "rooms": config.rooms,
            "concurrency": config.concurrency,
            "requests": config.requests,
            "duration_s": config.duration.as_secs(),
            "rate": config.rate,
            "zipf_exponent": config.zipf_exponent,
            "weights": { "send": 60, "sync": 25, "messages": 10, "join": 5 },
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

/// Registers the users; the first creates the rooms, and each room gets the
/// members that [`initial_members`] picks.
fn create_world(ctx: &Context, config: &MixedConfig) -> Result<World, String> {
    let users = setup::register_users(ctx, config.users, config.concurrency)?;
    let rooms = setup::create_rooms(ctx, &users[0], config.rooms, config.concurrency)?;
    let members = initial_members(ctx.seed, users.len(), rooms.len(), config.zipf_exponent);
    let joins: Vec<(usize, usize)> = members
        .iter()
        .enumerate()
        .flat_map(|(room, members)| {
            members
                .iter()
                .filter(|&&user| user != 0)
                .map(move |&user| (user, room))
        })
        .collect();
    setup::join_pairs(ctx, &users, &rooms, &joins, config.concurrency)?;
    Ok(World { users, rooms })
}

/// Returns the members of each room: room `k` has `ceil(users * w_k)`
/// members, where `w_k = 1 / (k + 1)^exponent`, so room 0 has every user.
/// User 0, the creator, is in every room, and the others are a seeded
/// random choice.
pub fn initial_members(seed: u64, users: usize, rooms: usize, exponent: f64) -> Vec<Vec<usize>> {
    zipf_weights(rooms, exponent)
        .into_iter()
        .enumerate()
        .map(|(room, weight)| {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let size = ((users as f64 * weight).ceil() as usize).clamp(1, users.max(1));
            let mut others: Vec<usize> = (1..users).collect();
            XorShift64::new(seed ^ splitmix64(room as u64 + 1)).shuffle(&mut others);
            let mut members = vec![0];
            members.extend_from_slice(&others[..size - 1]);
            members
        })
        .collect()
}

/// Returns the users that worker `worker` of `workers` acts as: every
/// `workers`-th user from its own index, or one shared user when there are
/// fewer users than workers.
pub fn worker_users(worker: usize, workers: usize, users: usize) -> Vec<usize> {
    if users >= workers {
        (worker..users).step_by(workers.max(1)).collect()
    } else {
        vec![worker % users.max(1)]
    }
}

/// Reads each user's joined rooms with `GET /joined_rooms`, as flags by room
/// index. Rooms that are not part of the world are ignored.
fn load_memberships(
    ctx: &Context,
    world: &World,
    concurrency: u32,
) -> Result<Vec<Vec<bool>>, String> {
    let index: HashMap<&str, usize> = world
        .rooms
        .iter()
        .enumerate()
        .map(|(room, id)| (id.as_str(), room))
        .collect();
    let joined_rooms = setup::parallel_map(
        ctx,
        &world.users,
        concurrency,
        |client, session| client.joined_rooms(&session.access_token),
        |session| format!("reading the joined rooms of {}", session.user_id),
    )?;
    Ok(joined_rooms
        .into_iter()
        .map(|room_ids| {
            let mut joined = vec![false; world.rooms.len()];
            for room_id in room_ids {
                if let Some(&room) = index.get(room_id.as_str()) {
                    joined[room] = true;
                }
            }
            joined
        })
        .collect())
}

/// Shared, read-only inputs of the workers.
struct Mix<'a> {
    world: &'a World,
    room_weights: Vec<f64>,
    sync_filter: String,
    /// Prefix of transaction IDs, unique to this run.
    run_id: u128,
}

fn run_mix(
    ctx: &Context,
    config: &MixedConfig,
    world: &World,
    joined: &[Vec<bool>],
) -> Result<(Tally, Duration), String> {
    let mix = Mix {
        world,
        room_weights: zipf_weights(world.rooms.len(), config.zipf_exponent),
        sync_filter: json!({
            "room": {
                "timeline": { "limit": SYNC_TIMELINE_LIMIT },
                "state": { "lazy_load_members": true },
            },
        })
        .to_string(),
        run_id: setup::unix_millis(),
    };
    let workers = config.concurrency as usize;
    let start = Instant::now();
    let pacing = Pacing::new(config.rate, start, workers as u64);
    let deadline = start + config.duration;
    let progress = Progress::default();

    let (tallies, elapsed) = run_threads("mixed", workers, &progress, |worker| {
        let mut users: Vec<UserState<'_>> = worker_users(worker, workers, world.users.len())
            .into_iter()
            .map(|user| UserState {
                session: &world.users[user],
                since: None,
                joined: joined[user].clone(),
            })
            .collect();
        let mut rng = XorShift64::new(ctx.seed ^ splitmix64(worker as u64));
        let mut pacer = Pacer::new(&pacing, worker as u64, config.requests, deadline);
        let mut recorder = Recorder::new(&progress);
        let mut client = ctx.client();
        while let Some(slot) = pacer.next_slot() {
            recorder.start_lag(slot.start_lag);
            let user = rng.below(users.len());
            let operation = pick_weighted(&mut rng, &OPERATION_WEIGHTS, |_| true)
                .map_or(Operation::Send, |index| Operation::ALL[index]);
            let request = Request {
                slot,
                operation,
                client: &mut client,
                recorder: &mut recorder,
            };
            mix.perform(request, &mut users[user], &mut rng);
        }
        let mut tally = recorder.finish();
        tally.missed = pacer.missed();
        tally
    })?;
    Ok((merge_tallies(tallies), elapsed))
}

/// One request of a worker, before the room is chosen.
struct Request<'r, 'p> {
    slot: Slot,
    operation: Operation,
    client: &'r mut Client,
    recorder: &'r mut Recorder<'p>,
}

/// Returns the operation to perform in place of `operation`: a send or page
/// with no joined room becomes a join, and a join with every room joined
/// becomes a send. Returns `None` when neither is possible.
fn fall_back(operation: Operation, any_joined: bool, any_free: bool) -> Option<Operation> {
    match operation {
        Operation::Send | Operation::Messages if !any_joined => any_free.then_some(Operation::Join),
        Operation::Join if !any_free => any_joined.then_some(Operation::Send),
        other => Some(other),
    }
}

impl Mix<'_> {
    /// Chooses the room for the operation by Zipf weight, sends the request
    /// and records it.
    fn perform(&self, request: Request<'_, '_>, user: &mut UserState<'_>, rng: &mut XorShift64) {
        let Request {
            slot,
            operation,
            client,
            recorder,
        } = request;
        let any_joined = user.joined.iter().any(|&joined| joined);
        let any_free = user.joined.iter().any(|&joined| !joined);
        let Some(operation) = fall_back(operation, any_joined, any_free) else {
            return;
        };
        let token = &user.session.access_token;
        let joined_room = |rng: &mut XorShift64| {
            pick_weighted(rng, &self.room_weights, |room| user.joined[room]).unwrap_or(0)
        };
        match operation {
            Operation::Sync => self.sync(client, recorder, slot, user),
            Operation::Send => {
                let room_id = &self.world.rooms[joined_room(rng)];
                let txn_id = format!("mixed-{}-{}", self.run_id, slot.index);
                let text = format!("loadtest mixed {}", slot.index);
                let result = client.send_text(token, room_id, &txn_id, &text).map(|_| ());
                record(recorder, "send", slot, result, room_id);
            }
            Operation::Messages => {
                let room_id = &self.world.rooms[joined_room(rng)];
                let result = client
                    .messages_backwards(token, room_id, MESSAGES_PAGE_LIMIT)
                    .map(|_| ());
                record(recorder, "messages", slot, result, room_id);
            }
            Operation::Join => {
                let room =
                    pick_weighted(rng, &self.room_weights, |room| !user.joined[room]).unwrap_or(0);
                let room_id = &self.world.rooms[room];
                let result = client.join(token, room_id);
                if result.is_ok() {
                    user.joined[room] = true;
                }
                record(recorder, "join", slot, result, room_id);
            }
        }
    }

    /// Syncs incrementally with timeout 0, or makes the user's first
    /// (initial) sync, which is counted as `initial_sync`.
    fn sync(
        &self,
        client: &mut Client,
        recorder: &mut Recorder<'_>,
        slot: Slot,
        user: &mut UserState<'_>,
    ) {
        let op = if user.since.is_some() {
            "sync"
        } else {
            "initial_sync"
        };
        let request = SyncRequest {
            filter: &self.sync_filter,
            since: user.since.as_deref(),
            timeout_ms: 0,
        };
        let result = client
            .sync(&user.session.access_token, &request, None)
            .and_then(|response| next_batch(&response.body));
        let result = result.map(|next| user.since = Some(next));
        record(recorder, op, slot, result, &user.session.user_id);
    }
}

fn record(
    recorder: &mut Recorder<'_>,
    op: &'static str,
    slot: Slot,
    result: Result<(), crate::matrix::ApiError>,
    context: &str,
) {
    match result {
        Ok(()) => recorder.success(op, slot.origin.elapsed()),
        Err(error) => {
            recorder.failure(op, &error, context);
            pause_after(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation, fall_back, initial_members, worker_users};

    #[test]
    fn operations_fall_back_when_no_room_fits() {
        assert_eq!(
            fall_back(Operation::Send, true, false),
            Some(Operation::Send)
        );
        assert_eq!(
            fall_back(Operation::Send, false, true),
            Some(Operation::Join)
        );
        assert_eq!(
            fall_back(Operation::Messages, false, true),
            Some(Operation::Join)
        );
        assert_eq!(
            fall_back(Operation::Join, true, false),
            Some(Operation::Send)
        );
        assert_eq!(
            fall_back(Operation::Join, true, true),
            Some(Operation::Join)
        );
        assert_eq!(
            fall_back(Operation::Sync, false, false),
            Some(Operation::Sync)
        );
        assert_eq!(fall_back(Operation::Send, false, false), None);
    }

    #[test]
    fn room_sizes_follow_zipf() {
        let members = initial_members(7, 20, 5, 1.0);
        let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
        // ceil(20 / (k + 1)) for k = 0..5.
        assert_eq!(sizes, [20, 10, 7, 5, 4]);
        for room in &members {
            assert_eq!(room[0], 0, "the creator is in every room");
            let mut sorted = room.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), room.len(), "duplicate member in {room:?}");
            assert!(room.iter().all(|&user| user < 20));
        }
    }

    #[test]
    fn members_depend_on_seed() {
        assert_eq!(
            initial_members(1, 50, 4, 1.0),
            initial_members(1, 50, 4, 1.0)
        );
        assert_ne!(
            initial_members(1, 50, 4, 1.0),
            initial_members(2, 50, 4, 1.0)
        );
    }

    #[test]
    fn flat_exponent_fills_every_room() {
        let members = initial_members(3, 6, 3, 0.0);
        assert!(members.iter().all(|room| room.len() == 6));
        let single = initial_members(3, 1, 3, 2.0);
        assert!(single.iter().all(|room| room == &[0]));
    }

    #[test]
    fn workers_split_users() {
        assert_eq!(worker_users(0, 3, 7), [0, 3, 6]);
        assert_eq!(worker_users(2, 3, 7), [2, 5]);
        assert_eq!(worker_users(3, 4, 2), [1]);
    }
}
