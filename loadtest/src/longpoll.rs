//! An event-loop HTTP client that runs many long-polling members on one
//! thread: one `mio::Poll` over the members' keep-alive connections, one
//! request in flight per member, and one timer per member for its request
//! deadline or its wait before the next request.
//!
//! A [`Handler`] decides what each member sends and takes the results, so
//! this module contains no Matrix logic.

mod connection;
#[cfg(test)]
mod tests;
mod timers;

use std::{
    io,
    time::{Duration, Instant},
};

use mio::{Events, Poll, Token};

use crate::{
    http::{HttpError, Response},
    target::Target,
};

use self::{
    connection::{Io, PolledConnection},
    timers::Timers,
};

/// Readiness events taken from the poll per wakeup.
const EVENT_CAPACITY: usize = 1024;
/// Size of the read buffer that the connections of one thread share.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Next action of a member.
#[derive(Debug)]
pub enum Next {
    /// Send this encoded request. It fails with [`HttpError::TimedOut`]
    /// unless its response is complete by `deadline`.
    Send { request: Vec<u8>, deadline: Instant },
    /// Send nothing, and ask [`Handler::next`] again at this time.
    WaitUntil(Instant),
    /// Send nothing more.
    Done,
}

/// The members' side of the event loop. Members are numbered from 0.
pub trait Handler {
    /// Returns what `member` does next. Called once per member at the start,
    /// after each of its exchanges and when its wait ends.
    fn next(&mut self, member: usize, now: Instant) -> Next;

    /// Takes the result of an exchange of `member`. `at` is when the
    /// response was complete or the exchange failed.
    fn complete(&mut self, member: usize, result: Result<Response, HttpError>, at: Instant);
}

/// Runs `members` members against `target` until every one of them is done.
/// Fails only when the poll itself fails, because request failures go to
/// `handler`.
pub fn run(target: &Target, members: usize, handler: &mut impl Handler) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(EVENT_CAPACITY);
    let mut chunk = vec![0; READ_CHUNK_BYTES];
    let mut state = EventLoop {
        handler,
        connections: (0..members)
            .map(|member| PolledConnection::new(Token(member)))
            .collect(),
        timers: Timers::new(members),
        active: members,
        finished: Vec::new(),
    };

    let mut io = Io {
        registry: poll.registry(),
        target,
        chunk: &mut chunk,
    };
    for member in 0..members {
        state.dispatch(member, &mut io);
    }
    while state.active > 0 {
        match poll.poll(&mut events, state.poll_timeout()) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        let mut io = Io {
            registry: poll.registry(),
            target,
            chunk: &mut chunk,
        };
        for event in &events {
            state.on_event(event, &mut io);
        }
        state.fire_due_timers(&mut io);
        state.dispatch_finished(&mut io);
    }
    Ok(())
}

/// The members' connections and timers on one thread.
struct EventLoop<'h, H> {
    handler: &'h mut H,
    connections: Vec<PolledConnection>,
    /// Every member that is not done has exactly one timer: the deadline of
    /// its request in flight, or the end of its wait.
    timers: Timers,
    /// Members that are not done.
    active: usize,
    /// Members whose exchange ended during this wakeup, in order. They start
    /// their next request after every ready response has been read, so that
    /// writing one member's request does not delay the time taken for the
    /// next member's response.
    finished: Vec<usize>,
}

impl<H: Handler> EventLoop<'_, H> {
    /// Returns the time until the earliest timer, rounded up to a whole
    /// millisecond by the poll.
    fn poll_timeout(&self) -> Option<Duration> {
        debug_assert_eq!(self.timers.len(), self.active);
        let now = Instant::now();
        self.timers
            .next_due()
            .map(|at| at.saturating_duration_since(now))
    }

    fn on_event(&mut self, event: &mio::event::Event, io: &mut Io<'_>) {
        let member = event.token().0;
        let Some(connection) = self.connections.get_mut(member) else {
            return;
        };
        connection.on_event(event);
        if let Some(result) = connection.advance(io) {
            self.finish(member, result);
        }
    }

    /// Ends the requests whose deadline has passed and the waits that are
    /// over. Only due timers are looked at, not every member.
    fn fire_due_timers(&mut self, io: &mut Io<'_>) {
        let now = Instant::now();
        while let Some(member) = self.timers.pop_due(now) {
            let connection = &mut self.connections[member];
            if connection.is_in_flight() {
                let error = connection.time_out(io.registry);
                self.finish(member, Err(error));
            } else {
                self.dispatch(member, io);
            }
        }
    }

    /// Hands the result of an exchange to the handler. The member starts
    /// what it does next in [`Self::dispatch_finished`].
    fn finish(&mut self, member: usize, result: Result<Response, HttpError>) {
        self.timers.clear(member);
        self.handler.complete(member, result, Instant::now());
        self.finished.push(member);
    }

    /// Starts the next action of each member that finished an exchange.
    fn dispatch_finished(&mut self, io: &mut Io<'_>) {
        let mut finished = std::mem::take(&mut self.finished);
        for member in finished.drain(..) {
            self.dispatch(member, io);
        }
        self.finished = finished;
    }

    /// Asks the handler what `member` does next and starts it. A request
    /// that fails at once (a refused connect) goes back to the handler.
    fn dispatch(&mut self, member: usize, io: &mut Io<'_>) {
        loop {
            match self.handler.next(member, Instant::now()) {
                Next::Send { request, deadline } => {
                    match self.connections[member].start(io, request, deadline) {
                        None => {
                            self.timers.set(member, deadline);
                            return;
                        }
                        Some(result) => self.handler.complete(member, result, Instant::now()),
                    }
                }
                Next::WaitUntil(at) => {
                    self.timers.set(member, at);
                    return;
                }
                Next::Done => {
                    self.connections[member].close(io.registry);
                    self.active -= 1;
                    return;
                }
            }
        }
    }
}
