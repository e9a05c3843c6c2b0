//! The senders of the `send` phase. Each sends `m.room.message` events as
//! its user on its own keep-alive connection, one request at a time, in the
//! order that its [`Pacer`] sets. One [`longpoll`] event loop runs a group of
//! senders on one thread.

use std::{
    ops::Range,
    time::{Duration, Instant},
};

use crate::{
    http::{HttpError, Response, encode_request},
    longpoll::{self, Handler, Next},
    matrix::{ApiError, Session, send_event_id, send_message_path, text_message},
    pacing::{NextSlot, Pacer, Pacing, Slot},
    progress::Progress,
    rng::pick_room,
    scenario::pause_for,
    setup::{Context, World},
    tally::{Recorder, Tally},
    target::Target,
};

/// Settings and state that every sender of the phase shares.
pub struct Plan<'a> {
    pub ctx: &'a Context,
    pub world: &'a World,
    pub pacing: &'a Pacing,
    /// Maximum number of sends over all senders, successful or not.
    pub messages: u64,
    /// No send starts at or after this time.
    pub deadline: Instant,
    /// Prefix of the transaction IDs, unique to the run.
    pub run_id: u128,
    pub progress: &'a Progress,
}

/// One sender's schedule and the send it has in flight.
struct Sender<'a> {
    session: &'a Session,
    pacer: Pacer<'a>,
    /// Slot and room index of the send in flight.
    in_flight: Option<(Slot, usize)>,
    /// End of the pause after a failed send.
    resume_at: Option<Instant>,
}

/// The senders that one event loop runs, and the tally of their sends.
struct SenderGroup<'a> {
    seed: u64,
    target: &'a Target,
    timeout: Duration,
    rooms: &'a [String],
    run_id: u128,
    senders: Vec<Sender<'a>>,
    recorder: Recorder<'a>,
}

/// Runs the senders numbered `senders` (out of the phase's `--concurrency`)
/// on the calling thread until each is done. Sender `s` sends as user
/// `s mod users`. Returns the tally of their sends.
pub fn run_senders(plan: &Plan<'_>, senders: Range<usize>) -> Result<Tally, String> {
    let users = &plan.world.users;
    let senders = senders
        .map(|sender| Sender {
            session: &users[sender % users.len()],
            pacer: Pacer::new(plan.pacing, sender as u64, plan.messages, plan.deadline),
            in_flight: None,
            resume_at: None,
        })
        .collect::<Vec<_>>();
    let mut group = SenderGroup {
        seed: plan.ctx.seed,
        target: &plan.ctx.target,
        timeout: plan.ctx.timeout,
        rooms: &plan.world.rooms,
        run_id: plan.run_id,
        senders,
        recorder: Recorder::new(plan.progress),
    };
    longpoll::run(&plan.ctx.target, group.senders.len(), &mut group)
        .map_err(|error| format!("the send event loop failed: {error}"))?;

    let mut tally = group.recorder.finish();
    tally.missed = group
        .senders
        .iter()
        .map(|sender| sender.pacer.missed())
        .sum();
    Ok(tally)
}

impl Handler for SenderGroup<'_> {
    fn next(&mut self, index: usize, now: Instant) -> Next {
        let sender = &mut self.senders[index];
        if let Some(resume_at) = sender.resume_at.take()
            && now < resume_at
        {
            return Next::WaitUntil(resume_at);
        }
        let slot = match sender.pacer.poll_slot(now) {
            NextSlot::Ready(slot) => slot,
            // NOTE: the event loop's poll wakes on whole milliseconds, so a
            // send can start up to 1 ms after its due time, and its latency,
            // measured from the due time, includes that delay.
            NextSlot::DueAt(due) => return Next::WaitUntil(due),
            NextSlot::Done => return Next::Done,
        };

        self.recorder.start_lag(slot.start_lag);
        let room = pick_room(self.seed, slot.index, self.rooms.len());
        sender.in_flight = Some((slot, room));
        let request = encode_send(
            self.target,
            sender.session,
            &self.rooms[room],
            self.run_id,
            slot.index,
        );
        Next::Send {
            request,
            deadline: now + self.timeout,
        }
    }

    fn complete(&mut self, index: usize, result: Result<Response, HttpError>, at: Instant) {
        let sender = &mut self.senders[index];
        let Some((slot, room)) = sender.in_flight.take() else {
            return;
        };
        let sent = result
            .map_err(ApiError::from)
            .and_then(|response| send_event_id(&response));
        match sent {
            Ok(_) => self
                .recorder
                .success("send", at.saturating_duration_since(slot.origin)),
            Err(error) => {
                self.recorder.failure("send", &error, &self.rooms[room]);
                sender.resume_at = pause_for(&error).map(|delay| at + delay);
            }
        }
    }
}

/// Encodes send `index` of the phase: the `m.text` message
/// `loadtest message {index}` with transaction ID `{run_id}-{index}`.
fn encode_send(
    target: &Target,
    session: &Session,
    room_id: &str,
    run_id: u128,
    index: u64,
) -> Vec<u8> {
    let txn_id = format!("{run_id}-{index}");
    let path = send_message_path(&target.base_path, room_id, &txn_id);
    let body = text_message(&format!("loadtest message {index}"));
    let token = Some(session.access_token.as_str());
    encode_request("PUT", &target.host_header, &path, token, &body)
}

#[cfg(test)]
mod tests;
