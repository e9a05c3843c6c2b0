//! The `fanout` scenario: one sender sends messages at a fixed rate into a
//! room whose members all long-poll `/sync`, and the report gives the time
//! from the sender's 200 response to each member's sync showing the event.
//!
//! The members upload their sync filter and make their initial syncs first.
//! Then `--poll-threads` threads each run one event loop over their share of
//! the members' long-polls, which [`member`] drives.

mod member;

use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use self::member::{MemberOutcome, MemberStart, run_members};
use crate::{
    delivery::{SentEvent, match_deliveries},
    matrix::{Session, SyncRequest, next_batch},
    pacing::{Pacer, Pacing},
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    scenario::{merge_tallies, partition, pause_after, run_threads},
    setup::{self, Context, World},
    tally::{Recorder, Tally},
};

/// Sync `timeout` of the members' long-polls, in milliseconds.
const LONG_POLL_MS: u64 = 30_000;
/// Pause between the last member's first long-poll request and the first
/// send, so that those requests reach the server and wait there.
// NOTE: this is an estimate. A member whose long-poll arrives later still
// gets every event through `since`, but its first deliveries look slower.
const PARK_GRACE: Duration = Duration::from_millis(200);
/// Interval at which the sender checks whether all members are polling.
const READY_POLL: Duration = Duration::from_millis(5);
/// Pause of a member after a failed sync, so that a server that fails every
/// sync at once does not meet a thousand members retrying in a busy loop.
const SYNC_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Settings of one `fanout` run, already validated.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub members: u32,
    pub messages: u64,
    pub rate: f64,
    pub concurrency: u32,
    pub timeline_limit: u32,
    /// Threads that run the members' long-polls, from 1 to `members`.
    pub poll_threads: u32,
    /// Bound on the sends, from the start of the members' long-polls.
    pub duration: Duration,
    /// How long members keep syncing after the last send.
    pub drain: Duration,
}

/// State that the sender and the members share during the phase.
struct Shared<'a> {
    config: &'a FanoutConfig,
    world: &'a World,
    progress: Progress,
    start: Instant,
    /// Members that have sent their first long-poll request.
    polling: AtomicUsize,
    /// Sends that returned an event ID so far.
    sent_ok: AtomicU64,
    sender_done: AtomicBool,
    /// When members stop syncing, in microseconds after `start`. The sender
    /// lowers it to the end of its sends plus the drain time.
    stop_after_us: AtomicU64,
}

impl Shared<'_> {
    fn room_id(&self) -> &str {
        &self.world.rooms[0]
    }

    fn sender_id(&self) -> &str {
        &self.world.users[0].user_id
    }

    fn stop_at(&self) -> Instant {
        self.start + Duration::from_micros(self.stop_after_us.load(Ordering::Acquire))
    }
}

/// Result of one thread of the phase.
enum Outcome {
    Sender {
        tally: Tally,
        sent: Vec<SentEvent>,
    },
    /// The syncs of one thread's members and what each member saw.
    Members(Result<(Tally, Vec<MemberOutcome>), String>),
}

pub fn run(ctx: &Context, config: &FanoutConfig) -> Result<Report, String> {
    let setup_options = json!({ "members": config.members });
    let (world, setup) =
        setup::load_or_create(ctx, "fanout", &setup_options, || create_world(ctx, config))?;
    eprintln!("setup done in {:.2} s", setup.seconds);
    let filter = member_filter(&world.rooms[0], config.timeline_limit);
    let (starts, initial_tally) = start_members(ctx, config, &world, &filter)?;

    let shared = Shared {
        config,
        world: &world,
        progress: Progress::default(),
        start: Instant::now(),
        polling: AtomicUsize::new(0),
        sent_ok: AtomicU64::new(0),
        sender_done: AtomicBool::new(false),
        stop_after_us: AtomicU64::new(micros(config.duration + config.drain)),
    };
    let groups = partition(config.members as usize, config.poll_threads as usize);
    let members = &world.users[1..];
    let (outcomes, elapsed) = run_threads("fanout", groups.len() + 1, &shared.progress, |index| {
        if index == 0 {
            return run_sender(ctx, &shared);
        }
        let group = groups[index - 1].clone();
        let sessions = &members[group.clone()];
        Outcome::Members(run_members(ctx, &shared, sessions, &starts[group]))
    })?;

    let mut tallies = vec![initial_tally];
    let mut sent = Vec::new();
    let mut arrivals = Vec::with_capacity(config.members as usize);
    let mut limited = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Sender {
                tally,
                sent: events,
            } => {
                tallies.push(tally);
                sent = events;
            }
            Outcome::Members(result) => {
                let (tally, group_outcomes) = result?;
                tallies.push(tally);
                for member in group_outcomes {
                    arrivals.push(member.arrivals);
                    limited += member.limited;
                }
            }
        }
    }
    let tally = merge_tallies(tallies);
    let deliveries = match_deliveries(&sent, &arrivals);
    let sends = tally
        .ops
        .get("send")
        .map_or(0, |op| op.succeeded + op.failed());

    let header = ReportHeader {
        scenario: "fanout",
        url: ctx.url.clone(),
        seed: Some(ctx.seed),
        parameters: json!({
            "members": config.members,
            "messages": config.messages,
            "rate": config.rate,
            "concurrency": config.concurrency,
            "timeline_limit": config.timeline_limit,
            "poll_threads": config.poll_threads,
            "sync_timeout_ms": LONG_POLL_MS,
            "duration_s": config.duration.as_secs(),
            "drain_ms": config.drain.as_millis(),
            "timeout_ms": ctx.timeout.as_millis(),
        }),
        setup: Some(setup),
    };
    let stopped_by = StopReason::from_count(sends, config.messages);
    let mut report = Report::new(header, elapsed, stopped_by, &tally, Some(config.rate));
    let deliveries = deliveries.to_report(u64::from(config.members), sent.len() as u64, limited);
    report.latency.clone_from(&deliveries.latency);
    "delivery".clone_into(&mut report.latency_of);
    report.deliveries = Some(deliveries);
    Ok(report)
}

/// Registers the sender and the members; the sender creates the room and
/// the members join it.
fn create_world(ctx: &Context, config: &FanoutConfig) -> Result<World, String> {
    let users = setup::register_users(ctx, config.members + 1, config.concurrency)?;
    let rooms = setup::create_rooms(ctx, &users[0], 1, 1)?;
    let joins: Vec<(usize, usize)> = (1..users.len()).map(|member| (member, 0)).collect();
    setup::join_pairs(ctx, &users, &rooms, &joins, config.concurrency)?;
    Ok(World { users, rooms })
}

/// Uploads each member's sync filter, then makes its initial sync with that
/// filter. Both steps use `concurrency` parallel connections, because a
/// thousand at once would time out. Returns each member's filter ID and
/// `since` token, and a tally of the requests as `filter` and `initial_sync`.
fn start_members(
    ctx: &Context,
    config: &FanoutConfig,
    world: &World,
    filter: &Value,
) -> Result<(Vec<MemberStart>, Tally), String> {
    let members = &world.users[1..];
    let start = Instant::now();
    let filters = upload_filters(ctx, config, members, filter)?;
    eprintln!(
        "{} members uploaded their filter in {:.2} s",
        filters.len(),
        start.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let filter_ids: Vec<&str> = filters.iter().map(|(id, _)| id.as_str()).collect();
    let syncs = initial_syncs(ctx, config, members, &filter_ids)?;
    eprintln!(
        "{} members made their initial sync in {:.2} s; long-polling on {} thread(s)",
        syncs.len(),
        start.elapsed().as_secs_f64(),
        config.poll_threads
    );

    let progress = Progress::default();
    let mut recorder = Recorder::new(&progress);
    let mut starts = Vec::with_capacity(members.len());
    for ((filter_id, filter_latency), (since, sync_latency)) in filters.into_iter().zip(syncs) {
        recorder.success("filter", filter_latency);
        recorder.success("initial_sync", sync_latency);
        starts.push(MemberStart { filter_id, since });
    }
    Ok((starts, recorder.finish()))
}

/// Uploads `filter` for each member and returns the filter IDs and
/// latencies.
fn upload_filters(
    ctx: &Context,
    config: &FanoutConfig,
    members: &[Session],
    filter: &Value,
) -> Result<Vec<(String, Duration)>, String> {
    setup::parallel_map(
        ctx,
        members,
        config.concurrency,
        |client, member| {
            let started = Instant::now();
            let filter_id = client.upload_filter(&member.access_token, &member.user_id, filter)?;
            Ok((filter_id, started.elapsed()))
        },
        |member| format!("uploading the filter of {}", member.user_id),
    )
}

/// Makes each member's initial sync with its filter ID and returns the
/// `since` tokens and latencies.
fn initial_syncs(
    ctx: &Context,
    config: &FanoutConfig,
    members: &[Session],
    filter_ids: &[&str],
) -> Result<Vec<(String, Duration)>, String> {
    let pairs: Vec<(&Session, &str)> = members.iter().zip(filter_ids.iter().copied()).collect();
    setup::parallel_map(
        ctx,
        &pairs,
        config.concurrency,
        |client, &(member, filter_id)| {
            let request = SyncRequest {
                filter: filter_id,
                since: None,
                timeout_ms: 0,
            };
            let started = Instant::now();
            let response = client.sync(&member.access_token, &request, None)?;
            Ok((next_batch(&response.body)?, started.elapsed()))
        },
        |(member, _)| format!("initial sync of {}", member.user_id),
    )
}

/// Returns the members' sync filter: only the fanout room, a bounded
/// timeline, lazy-loaded members, and no presence or account data.
pub fn member_filter(room_id: &str, timeline_limit: u32) -> Value {
    json!({
        "room": {
            "rooms": [room_id],
            "timeline": { "limit": timeline_limit },
            "state": { "lazy_load_members": true },
        },
        "presence": { "not_types": ["*"] },
        "account_data": { "not_types": ["*"] },
    })
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Waits until every member is long-polling, then sends on the schedule.
fn run_sender(ctx: &Context, shared: &Shared<'_>) -> Outcome {
    let config = shared.config;
    let send_deadline = shared.start + config.duration;
    let members = config.members as usize;
    while shared.polling.load(Ordering::Acquire) < members && Instant::now() < send_deadline {
        thread::sleep(READY_POLL);
    }
    thread::sleep(PARK_GRACE.min(send_deadline.saturating_duration_since(Instant::now())));

    let pacing = Pacing::new(Some(config.rate), Instant::now(), 1);
    let mut pacer = Pacer::new(&pacing, 0, config.messages, send_deadline);
    let mut recorder = Recorder::new(&shared.progress);
    let mut client = ctx.client();
    let token = &shared.world.users[0].access_token;
    let run_id = setup::unix_millis();
    let mut sent = Vec::new();
    while let Some(slot) = pacer.next_slot() {
        recorder.start_lag(slot.start_lag);
        let txn_id = format!("fanout-{run_id}-{}", slot.index);
        let text = format!("loadtest fanout {}", slot.index);
        match client.send_text(token, shared.room_id(), &txn_id, &text) {
            Ok(event_id) => {
                let acknowledged_at = Instant::now();
                recorder.success("send", acknowledged_at - slot.origin);
                sent.push(SentEvent {
                    event_id,
                    scheduled_at: slot.origin,
                    acknowledged_at,
                });
                shared.sent_ok.fetch_add(1, Ordering::AcqRel);
            }
            Err(error) => {
                recorder.failure("send", &error, shared.room_id());
                pause_after(&error);
            }
        }
    }

    let drain_end = Instant::now().saturating_duration_since(shared.start) + config.drain;
    shared
        .stop_after_us
        .fetch_min(micros(drain_end), Ordering::AcqRel);
    shared.sender_done.store(true, Ordering::Release);
    let mut tally = recorder.finish();
    tally.missed = pacer.missed();
    Outcome::Sender { tally, sent }
}

#[cfg(test)]
mod tests {
    use super::member_filter;

    #[test]
    fn member_filter_limits_room_and_timeline() {
        let filter = member_filter("!r:localhost", 50);
        assert_eq!(filter["room"]["rooms"][0], "!r:localhost");
        assert_eq!(filter["room"]["timeline"]["limit"], 50);
        assert_eq!(filter["room"]["state"]["lazy_load_members"], true);
        assert_eq!(filter["presence"]["not_types"][0], "*");
    }
}
