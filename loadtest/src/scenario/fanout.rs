//! The `fanout` scenario: one sender sends messages at a fixed rate into a
//! room whose members all long-poll `/sync`, and the report gives the time
//! from the sender's 200 response to each member's sync showing the event.

use std::{
    collections::HashSet,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    delivery::{Arrival, SentEvent, match_deliveries},
    matrix::{SyncRequest, next_batch, timeline_events, timeline_limited},
    pacing::{Pacer, Pacing},
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    scenario::{merge_tallies, pause_after, run_threads},
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
/// sync at once does not meet a thousand threads retrying in a busy loop.
const SYNC_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Settings of one `fanout` run, already validated.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub members: u32,
    pub messages: u64,
    pub rate: f64,
    pub concurrency: u32,
    pub timeline_limit: u32,
    /// Bound on the sends, from the start of the members' long-polls.
    pub duration: Duration,
    /// How long members keep syncing after the last send.
    pub drain: Duration,
}

/// State that the sender and the members share during the phase.
struct Shared<'a> {
    config: &'a FanoutConfig,
    world: &'a World,
    filter: String,
    progress: Progress,
    /// Requests of all members.
    member_tally: Mutex<Tally>,
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
    Sender { tally: Tally, sent: Vec<SentEvent> },
    Member(MemberOutcome),
}

/// Events that one member saw. Its requests are counted in
/// [`Shared::member_tally`].
struct MemberOutcome {
    arrivals: Vec<Arrival>,
    limited: u64,
}

pub fn run(ctx: &Context, config: &FanoutConfig) -> Result<Report, String> {
    let setup_options = json!({ "members": config.members });
    let (world, setup) =
        setup::load_or_create(ctx, "fanout", &setup_options, || create_world(ctx, config))?;
    eprintln!("setup done in {:.2} s", setup.seconds);
    let filter = member_filter(&world.rooms[0], config.timeline_limit);
    let (since_tokens, initial_tally) = initial_syncs(ctx, config, &world, &filter)?;

    let shared = Shared {
        config,
        world: &world,
        filter,
        progress: Progress::default(),
        member_tally: Mutex::new(initial_tally),
        start: Instant::now(),
        polling: AtomicUsize::new(0),
        sent_ok: AtomicU64::new(0),
        sender_done: AtomicBool::new(false),
        stop_after_us: AtomicU64::new(micros(config.duration + config.drain)),
    };
    let threads = config.members as usize + 1;
    let (outcomes, elapsed) = run_threads("fanout", threads, &shared.progress, |index| {
        if index == 0 {
            run_sender(ctx, &shared)
        } else {
            Outcome::Member(run_member(ctx, &shared, index, &since_tokens[index - 1]))
        }
    })?;

    let mut tallies = Vec::with_capacity(outcomes.len());
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
            Outcome::Member(member) => {
                arrivals.push(member.arrivals);
                limited += member.limited;
            }
        }
    }
    tallies.push(
        shared
            .member_tally
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner),
    );
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

/// Makes each member's initial sync with `concurrency` parallel connections,
/// because a thousand at once would time out, and returns their `since`
/// tokens and a tally of them as `initial_sync`.
fn initial_syncs(
    ctx: &Context,
    config: &FanoutConfig,
    world: &World,
    filter: &str,
) -> Result<(Vec<String>, Tally), String> {
    let request = SyncRequest {
        filter,
        since: None,
        timeout_ms: 0,
    };
    let start = Instant::now();
    let results = setup::parallel_map(
        ctx,
        &world.users[1..],
        config.concurrency,
        |client, member| {
            let started = Instant::now();
            let response = client.sync(&member.access_token, &request, None)?;
            Ok((next_batch(&response.body)?, started.elapsed()))
        },
        |member| format!("initial sync of {}", member.user_id),
    )?;
    eprintln!(
        "{} members made their initial sync in {:.2} s; long-polling",
        results.len(),
        start.elapsed().as_secs_f64()
    );
    let progress = Progress::default();
    let mut recorder = Recorder::new(&progress);
    let mut since_tokens = Vec::with_capacity(results.len());
    for (since, latency) in results {
        recorder.success("initial_sync", latency);
        since_tokens.push(since);
    }
    Ok((since_tokens, recorder.finish()))
}

/// Returns the members' sync filter: only the fanout room, a bounded
/// timeline, lazy-loaded members, and no presence or account data.
pub fn member_filter(room_id: &str, timeline_limit: u32) -> String {
    json!({
        "room": {
            "rooms": [room_id],
            "timeline": { "limit": timeline_limit },
            "state": { "lazy_load_members": true },
        },
        "presence": { "not_types": ["*"] },
        "account_data": { "not_types": ["*"] },
    })
    .to_string()
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

/// Long-polls from `since` until this member has seen every message that
/// the sender sent, or the drain time has passed.
fn run_member(ctx: &Context, shared: &Shared<'_>, index: usize, since: &str) -> MemberOutcome {
    let session = &shared.world.users[index];
    let mut client = ctx.client();
    let mut recorder = Recorder::shared(&shared.progress, &shared.member_tally);
    let mut outcome = MemberOutcome {
        arrivals: Vec::new(),
        limited: 0,
    };
    let mut since = since.to_owned();
    let mut first_poll = true;

    let mut seen = HashSet::new();
    while !has_everything(shared, seen.len() as u64) {
        let stop_at = shared.stop_at();
        if Instant::now() >= stop_at {
            break;
        }
        let request = SyncRequest {
            filter: &shared.filter,
            since: Some(&since),
            timeout_ms: LONG_POLL_MS,
        };
        // NOTE: when sends fail without being stored, a member that already
        // has every stored event waits out this long-poll (up to 30 s, or the
        // stop time read above), because nothing wakes it when the sender ends.
        if first_poll {
            shared.polling.fetch_add(1, Ordering::AcqRel);
            first_poll = false;
        }
        let started = Instant::now();
        let response = client
            .sync(&session.access_token, &request, Some(stop_at))
            .and_then(|response| Ok((next_batch(&response.body)?, response.body)));
        match response {
            Ok((next, body)) => {
                let at = Instant::now();
                recorder.success("sync", at - started);
                collect_arrivals(shared, &body, at, &mut seen, &mut outcome);
                since = next;
            }
            // The drain time ended during the long-poll, which is no error.
            Err(error) if error.is_timeout() && Instant::now() >= stop_at => break,
            Err(error) => {
                recorder.failure("sync", &error, &session.user_id);
                let left = stop_at.saturating_duration_since(Instant::now());
                thread::sleep(SYNC_RETRY_DELAY.min(left));
            }
        }
    }
    outcome
}

/// Returns whether a member that has seen `seen` distinct sender events
/// needs no more syncs: it has every planned message, or the sender is done
/// and it has every message that was sent.
fn has_everything(shared: &Shared<'_>, seen: u64) -> bool {
    if seen >= shared.config.messages {
        return true;
    }
    // The sender raises `sent_ok` before it sets `sender_done`.
    shared.sender_done.load(Ordering::Acquire) && seen >= shared.sent_ok.load(Ordering::Acquire)
}

/// Records the sender's messages in the room's timeline of one response.
fn collect_arrivals(
    shared: &Shared<'_>,
    body: &Value,
    at: Instant,
    seen: &mut HashSet<String>,
    outcome: &mut MemberOutcome,
) {
    let room_id = shared.room_id();
    if timeline_limited(body, room_id) {
        outcome.limited += 1;
    }
    for event in timeline_events(body, room_id) {
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        if field("type") != Some("m.room.message") || field("sender") != Some(shared.sender_id()) {
            continue;
        }
        let Some(event_id) = field("event_id") else {
            continue;
        };
        if seen.insert(event_id.to_owned()) {
            shared.progress.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        outcome.arrivals.push(Arrival {
            event_id: event_id.to_owned(),
            at,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::member_filter;

    #[test]
    fn member_filter_limits_room_and_timeline() {
        let filter: serde_json::Value =
            serde_json::from_str(&member_filter("!r:localhost", 50)).unwrap();
        assert_eq!(filter["room"]["rooms"][0], "!r:localhost");
        assert_eq!(filter["room"]["timeline"]["limit"], 50);
        assert_eq!(filter["room"]["state"]["lazy_load_members"], true);
        assert_eq!(filter["presence"]["not_types"][0], "*");
    }
}
