//! The members' side of the `fanout` phase: each member long-polls `/sync`
//! from its `since` token with its uploaded filter and records the sender's
//! messages as they arrive. One [`longpoll`] event loop runs a group of
//! members on one thread.

use std::{
    collections::HashSet,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{LONG_POLL_MS, SYNC_RETRY_DELAY, Shared};
use crate::{
    delivery::Arrival,
    http::{HttpError, Response, encode_request},
    longpoll::{self, Handler, Next},
    matrix::{ApiError, Session, SyncRequest, sync_path},
    setup::Context,
    sync_body::{SyncBody, Timeline},
    tally::{Recorder, Tally},
    target::Target,
};

/// A member's filter ID and `since` token from the phase before
/// long-polling.
#[derive(Debug, Clone)]
pub struct MemberStart {
    pub filter_id: String,
    /// `next_batch` of the member's initial sync.
    pub since: String,
}

/// Events that one member saw.
#[derive(Debug, Default)]
pub struct MemberOutcome {
    pub arrivals: Vec<Arrival>,
    /// Responses whose timeline of the room was `limited`.
    pub limited: u64,
}

/// One member's long-poll state.
struct Member<'a> {
    session: &'a Session,
    filter_id: String,
    since: String,
    /// Whether the member has not yet sent a long-poll.
    first_poll: bool,
    /// Distinct sender events seen so far, by event ID.
    seen: HashSet<String>,
    outcome: MemberOutcome,
    /// When the request in flight started.
    started: Instant,
    /// Stop time of the phase as read when the request in flight started.
    stop_at: Instant,
    /// End of the pause after a failed sync.
    retry_at: Option<Instant>,
    /// Set when a long-poll ran into the stop time.
    stopped: bool,
}

/// The members that one event loop runs, and the tally of their syncs.
struct MemberGroup<'a, 's> {
    shared: &'a Shared<'s>,
    target: &'a Target,
    /// Request timeout, which a long-poll gets on top of its sync timeout.
    timeout: Duration,
    members: Vec<Member<'a>>,
    recorder: Recorder<'a>,
}

/// Long-polls as `sessions` on the calling thread, each from its entry of
/// `starts`, until each has seen every message that the sender sent or the
/// drain time has passed. Returns the tally of their syncs and what each saw.
pub fn run_members(
    ctx: &Context,
    shared: &Shared<'_>,
    sessions: &[Session],
    starts: &[MemberStart],
) -> Result<(Tally, Vec<MemberOutcome>), String> {
    let now = Instant::now();
    let members = sessions
        .iter()
        .zip(starts)
        .map(|(session, start)| Member {
            session,
            filter_id: start.filter_id.clone(),
            since: start.since.clone(),
            first_poll: true,
            seen: HashSet::new(),
            outcome: MemberOutcome::default(),
            started: now,
            stop_at: now,
            retry_at: None,
            stopped: false,
        })
        .collect::<Vec<_>>();
    let mut group = MemberGroup {
        shared,
        target: &ctx.target,
        timeout: ctx.timeout,
        members,
        recorder: Recorder::new(&shared.progress),
    };
    longpoll::run(&ctx.target, group.members.len(), &mut group)
        .map_err(|error| format!("the long-poll event loop failed: {error}"))?;
    let outcomes = group
        .members
        .into_iter()
        .map(|member| member.outcome)
        .collect();
    Ok((group.recorder.finish(), outcomes))
}

impl Handler for MemberGroup<'_, '_> {
    fn next(&mut self, index: usize, now: Instant) -> Next {
        let shared = self.shared;
        let member = &mut self.members[index];
        if member.stopped {
            return Next::Done;
        }
        if let Some(retry_at) = member.retry_at.take()
            && now < retry_at
        {
            return Next::WaitUntil(retry_at);
        }
        if has_everything(shared, member.seen.len() as u64) {
            return Next::Done;
        }
        let stop_at = shared.stop_at();
        if now >= stop_at {
            return Next::Done;
        }

        // NOTE: when sends fail without being stored, a member that already
        // has every stored event waits out this long-poll (up to 30 s, or the
        // stop time read above), because nothing wakes it when the sender ends.
        if member.first_poll {
            shared.polling.fetch_add(1, Ordering::AcqRel);
            member.first_poll = false;
        }
        member.started = now;
        member.stop_at = stop_at;
        let deadline = (now + Duration::from_millis(LONG_POLL_MS) + self.timeout).min(stop_at);
        Next::Send {
            request: encode_long_poll(self.target, member),
            deadline,
        }
    }

    fn complete(&mut self, index: usize, result: Result<Response, HttpError>, at: Instant) {
        let shared = self.shared;
        let member = &mut self.members[index];
        let body = result
            .map_err(ApiError::from)
            .and_then(|response| SyncBody::from_response(&response));
        match body {
            Ok(body) => {
                self.recorder.success("sync", at - member.started);
                if let Some(timeline) = body.timeline(shared.room_id()) {
                    collect_arrivals(shared, timeline, at, member);
                }
                member.since = body.next_batch;
            }
            // The drain time ended during the long-poll, which is no error.
            Err(error) if error.is_timeout() && at >= member.stop_at => member.stopped = true,
            Err(error) => {
                self.recorder
                    .failure("sync", &error, &member.session.user_id);
                let left = member.stop_at.saturating_duration_since(at);
                member.retry_at = Some(at + SYNC_RETRY_DELAY.min(left));
            }
        }
    }
}

/// Encodes the member's next long-poll: `GET /sync` with its filter ID and
/// `since` token.
fn encode_long_poll(target: &Target, member: &Member<'_>) -> Vec<u8> {
    let request = SyncRequest {
        filter: &member.filter_id,
        since: Some(&member.since),
        timeout_ms: LONG_POLL_MS,
    };
    let path = sync_path(&target.base_path, &request);
    let token = Some(member.session.access_token.as_str());
    encode_request("GET", &target.host_header, &path, token, b"")
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

/// Records the sender's messages in the room's timeline of one response,
/// which the member read completely at `at`.
fn collect_arrivals(
    shared: &Shared<'_>,
    timeline: &Timeline,
    at: Instant,
    member: &mut Member<'_>,
) {
    if timeline.limited {
        member.outcome.limited += 1;
    }
    for event in &timeline.events {
        if event.kind.as_deref() != Some("m.room.message")
            || event.sender.as_deref() != Some(shared.sender_id())
        {
            continue;
        }
        let Some(event_id) = &event.event_id else {
            continue;
        };
        if member.seen.insert(event_id.clone()) {
            shared.progress.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        member.outcome.arrivals.push(Arrival {
            event_id: event_id.clone(),
            at,
        });
    }
}
