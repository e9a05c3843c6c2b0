//! The `send` scenario: register users, create and join rooms, then send
//! `m.room.message` events closed-loop from worker threads.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;

use crate::{
    http::HttpError,
    matrix::{ApiError, Client, RegistrationAuth, Session},
    report::{
        ErrorCount, Latency, Report, StopReason, count_error, merge_errors, new_latency_histogram,
        rate_per_second, record_latency,
    },
    rng::pick_room,
    target::Target,
};

/// Pause of a worker after a failed connection attempt.
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Settings of one `send` run, already validated.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub url: String,
    pub target: Target,
    pub users: u32,
    pub rooms: u32,
    pub concurrency: u32,
    pub messages: u64,
    pub duration: Duration,
    pub seed: u64,
    pub timeout: Duration,
    pub auth: RegistrationAuth,
    pub user_prefix: String,
}

/// Runs setup and the send phase. Fails if any setup request fails. Errors
/// during the send phase are counted in the report.
pub fn run(config: &SendConfig) -> Result<Report, String> {
    let setup_start = Instant::now();
    let mut client = Client::new(&config.target, config.timeout);
    let sessions = register_users(&mut client, config)?;
    let (creator, joiners) = sessions.split_first().ok_or("--users must be at least 1")?;
    let room_ids = create_rooms(&mut client, creator, config.rooms)?;
    join_rooms(&mut client, joiners, &room_ids)?;
    let setup = setup_start.elapsed();
    eprintln!("setup done in {:.2} s; sending", setup.as_secs_f64());

    let phase = send_messages(config, &sessions, &room_ids)?;
    let stopped_by = if phase.requests >= config.messages {
        StopReason::MessageLimit
    } else {
        StopReason::DurationLimit
    };
    Ok(Report {
        scenario: "send",
        url: config.url.clone(),
        seed: config.seed,
        users: config.users,
        rooms: config.rooms,
        concurrency: config.concurrency,
        room_ids,
        messages_limit: config.messages,
        duration_limit_s: config.duration.as_secs(),
        timeout_ms: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
        setup_s: setup.as_secs_f64(),
        elapsed_s: phase.elapsed.as_secs_f64(),
        stopped_by,
        requests: phase.requests,
        succeeded: phase.tally.succeeded,
        failed: phase.requests - phase.tally.succeeded,
        throughput_per_s: rate_per_second(phase.tally.succeeded, phase.elapsed),
        latency: Latency::from_histogram(&phase.tally.latency_us),
        errors: phase.tally.errors,
    })
}

/// Returns the usernames of this run: `PREFIX-SEED-MILLIS-N`, where MILLIS is
/// the Unix time in milliseconds at the start, so that runs do not collide.
pub fn usernames(prefix: &str, seed: u64, unix_ms: u128, count: u32) -> Vec<String> {
    (0..count)
        .map(|n| format!("{prefix}-{seed}-{unix_ms}-{n}"))
        .collect()
}

fn register_users(client: &mut Client, config: &SendConfig) -> Result<Vec<Session>, String> {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let mut sessions = Vec::new();
    for username in usernames(&config.user_prefix, config.seed, unix_ms, config.users) {
        let session = client
            .register(&username, &config.auth)
            .map_err(|error| format!("setup failed: registering {username:?}: {error}"))?;
        sessions.push(session);
    }
    eprintln!("registered {} users", sessions.len());
    Ok(sessions)
}

fn create_rooms(client: &mut Client, creator: &Session, count: u32) -> Result<Vec<String>, String> {
    let mut room_ids = Vec::new();
    for n in 0..count {
        let room_id = client
            .create_public_room(&creator.access_token, &format!("loadtest room {n}"))
            .map_err(|error| {
                format!(
                    "setup failed: {} creating room {n}: {error}",
                    creator.user_id
                )
            })?;
        room_ids.push(room_id);
    }
    eprintln!("{} created {} rooms", creator.user_id, room_ids.len());
    Ok(room_ids)
}

fn join_rooms(client: &mut Client, joiners: &[Session], room_ids: &[String]) -> Result<(), String> {
    for session in joiners {
        for room_id in room_ids {
            client
                .join(&session.access_token, room_id)
                .map_err(|error| {
                    format!(
                        "setup failed: {} joining {room_id}: {error}",
                        session.user_id
                    )
                })?;
        }
    }
    eprintln!("{} users joined {} rooms", joiners.len(), room_ids.len());
    Ok(())
}

/// Outcome of one worker, or of all of them merged.
struct Tally {
    latency_us: Histogram<u64>,
    succeeded: u64,
    errors: BTreeMap<String, ErrorCount>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: new_latency_histogram(),
            succeeded: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Self) {
        // Both histograms come from `new_latency_histogram` and contain
        // clamped values, so `add` cannot exceed the bounds.
        let _ = self.latency_us.add(&other.latency_us);
        self.succeeded += other.succeeded;
        merge_errors(&mut self.errors, other.errors);
    }
}

struct Phase {
    tally: Tally,
    requests: u64,
    elapsed: Duration,
}

/// State shared by all workers.
struct Shared<'a> {
    config: &'a SendConfig,
    sessions: &'a [Session],
    room_ids: &'a [String],
    /// Index of the next send. A worker claims one before each request.
    next_index: AtomicU64,
    deadline: Instant,
}

fn send_messages(
    config: &SendConfig,
    sessions: &[Session],
    room_ids: &[String],
) -> Result<Phase, String> {
    let start = Instant::now();
    let shared = Shared {
        config,
        sessions,
        room_ids,
        next_index: AtomicU64::new(0),
        deadline: start + config.duration,
    };

    let results: Vec<thread::Result<Tally>> = thread::scope(|scope| {
        let shared = &shared;
        let handles: Vec<_> = (0..config.concurrency as usize)
            .map(|worker| scope.spawn(move || run_worker(worker, shared)))
            .collect();
        handles
            .into_iter()
            .map(thread::ScopedJoinHandle::join)
            .collect()
    });
    let elapsed = start.elapsed();

    let mut tally = Tally::new();
    for result in results {
        tally.merge(result.map_err(|_| "a send worker thread panicked".to_owned())?);
    }
    let requests = tally.succeeded
        + tally
            .errors
            .values()
            .map(|counted| counted.count)
            .sum::<u64>();
    Ok(Phase {
        tally,
        requests,
        elapsed,
    })
}

/// Sends closed-loop (one request in flight) on the worker's own connection
/// until the message limit is reached or the deadline passes. Worker `w`
/// sends as user `w mod users`.
fn run_worker(worker: usize, shared: &Shared<'_>) -> Tally {
    let config = shared.config;
    let session = &shared.sessions[worker % shared.sessions.len()];
    let mut client = Client::new(&config.target, config.timeout);
    let mut tally = Tally::new();
    while Instant::now() < shared.deadline {
        let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
        if index >= config.messages {
            break;
        }
        let room_id = &shared.room_ids[pick_room(config.seed, index, shared.room_ids.len())];
        let txn_id = format!("m{index}");
        let text = format!("loadtest message {index}");

        let started = Instant::now();
        match client.send_text(&session.access_token, room_id, &txn_id, &text) {
            Ok(()) => {
                record_latency(&mut tally.latency_us, started.elapsed());
                tally.succeeded += 1;
            }
            Err(error) => {
                let connect_failed = matches!(error, ApiError::Http(HttpError::Connect { .. }));
                count_error(&mut tally.errors, error.label(), || {
                    format!("{room_id}: {error}")
                });
                if connect_failed {
                    // Without a pause, a worker facing a stopped server
                    // would spin through its share of --messages at once.
                    thread::sleep(CONNECT_RETRY_DELAY);
                }
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::usernames;

    #[test]
    fn usernames_are_distinct_lowercase() {
        let names = usernames("loadtest", 42, 1_767_225_600_000, 3);
        assert_eq!(
            names,
            [
                "loadtest-42-1767225600000-0",
                "loadtest-42-1767225600000-1",
                "loadtest-42-1767225600000-2"
            ]
        );
    }
}
