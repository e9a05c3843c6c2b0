//! One keep-alive HTTP/1.1 connection as a non-blocking state machine that
//! readiness events drive, with one request in flight at a time.
//!
//! It follows the rules of the blocking [`crate::http::Connection`]. The
//! connection is dropped after a failure or a response that does not allow
//! keep-alive. When a reused connection closes before any response byte, the
//! request is sent once more on a new connection.

use std::{
    io::{self, Read, Write},
    time::{Duration, Instant},
};

use mio::{Interest, Registry, Token, event::Event, net::TcpStream};

use crate::{
    http::{self, HttpError, Parsed, Response, classify, finish_at_eof, parse_response},
    target::Target,
};

/// Poll registry, target and read buffer that the event loop lends a
/// connection for its I/O.
pub struct Io<'a> {
    pub registry: &'a Registry,
    pub target: &'a Target,
    /// Scratch buffer for reads, shared by the connections of one thread.
    pub chunk: &'a mut [u8],
}

/// The request in flight and how far it got.
struct InFlight {
    request: Vec<u8>,
    written: usize,
    deadline: Instant,
    /// Time given to the whole request, named in a timeout error.
    budget: Duration,
    /// Whether a close before any response byte leads to sending the request
    /// again on a new connection. True only for the first attempt on a
    /// reused connection.
    may_resend: bool,
}

/// A connection to the target, opened on first use and opened again after
/// the server closes it or a request fails.
pub struct PolledConnection {
    token: Token,
    stream: Option<TcpStream>,
    /// Response bytes received so far.
    buffer: Vec<u8>,
    /// Readiness reported by events and not yet used up by a `WouldBlock`.
    readable: bool,
    writable: bool,
    in_flight: Option<InFlight>,
}

impl PolledConnection {
    /// Creates a closed connection whose socket will be registered under
    /// `token`.
    pub fn new(token: Token) -> Self {
        Self {
            token,
            stream: None,
            buffer: Vec::new(),
            readable: false,
            writable: false,
            in_flight: None,
        }
    }

    pub fn is_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts sending `request`, which must be complete by `deadline`,
    /// connecting first when no connection is open. Returns the result when
    /// the exchange ended at once (a failed connect, say), and `None` while
    /// it waits for readiness.
    ///
    /// The connect itself blocks, for at most the time left until `deadline`.
    // NOTE: a connect that hangs (a full accept queue) stalls every member
    // of this thread, though on a loopback address it returns at once.
    pub fn start(
        &mut self,
        io: &mut Io<'_>,
        request: Vec<u8>,
        deadline: Instant,
    ) -> Option<Result<Response, HttpError>> {
        debug_assert!(self.in_flight.is_none(), "one request at a time");
        // Only one request is in flight, so leftover bytes cannot belong to it.
        self.buffer.clear();
        self.in_flight = Some(InFlight {
            request,
            written: 0,
            deadline,
            budget: deadline.saturating_duration_since(Instant::now()),
            may_resend: self.stream.is_some(),
        });
        self.advance(io)
    }

    /// Records the readiness that `event` reports for this connection.
    pub fn on_event(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
    }

    /// Writes and reads as far as readiness allows. Returns the result when
    /// the exchange in flight ends, and `None` while it waits or when no
    /// request is in flight.
    pub fn advance(&mut self, io: &mut Io<'_>) -> Option<Result<Response, HttpError>> {
        loop {
            let step = self.step(io).transpose()?;
            let may_resend = self
                .in_flight
                .as_ref()
                .is_some_and(|flight| flight.may_resend);
            match step {
                Err(HttpError::ClosedBeforeResponse) if may_resend => {
                    // The server dropped the idle connection, so start over
                    // on a new one, within the same deadline.
                    self.close(io.registry);
                    if let Some(flight) = &mut self.in_flight {
                        flight.may_resend = false;
                        flight.written = 0;
                    }
                }
                result => {
                    if !matches!(&result, Ok(response) if response.keep_alive) {
                        self.close(io.registry);
                    }
                    self.in_flight = None;
                    return Some(result);
                }
            }
        }
    }

    /// Ends the exchange in flight because its deadline has passed, and
    /// closes the connection.
    pub fn time_out(&mut self, registry: &Registry) -> HttpError {
        self.close(registry);
        let budget = self
            .in_flight
            .take()
            .map_or(Duration::ZERO, |flight| flight.budget);
        HttpError::TimedOut(budget)
    }

    /// Closes the connection, if one is open. A request in flight stays
    /// planned and is sent on the next connection.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.stream.take() {
            // Closing the socket removes it from the poll anyway.
            let _ = registry.deregister(&mut stream);
        }
        self.buffer.clear();
        self.readable = false;
        self.writable = false;
    }

    /// Makes progress on the request in flight: `Ok(None)` while waiting
    /// for readiness, `Ok(Some(_))` with a complete response.
    fn step(&mut self, io: &mut Io<'_>) -> Result<Option<Response>, HttpError> {
        let Some(flight) = &self.in_flight else {
            return Ok(None);
        };
        if self.stream.is_none() {
            let (deadline, budget) = (flight.deadline, flight.budget);
            self.open(io, deadline, budget)?;
        }
        let Self {
            stream: Some(stream),
            in_flight: Some(flight),
            buffer,
            readable,
            writable,
            ..
        } = self
        else {
            return Ok(None);
        };
        if !write_request(stream, flight, writable)? || !*readable {
            return Ok(None);
        }
        read_response(stream, buffer, readable, io.chunk, flight.budget)
    }

    /// Connects, makes the socket non-blocking and registers it.
    fn open(&mut self, io: &Io<'_>, deadline: Instant, budget: Duration) -> Result<(), HttpError> {
        let stream = http::connect(io.target, deadline, budget)?;
        stream.set_nonblocking(true).map_err(HttpError::Io)?;
        let mut stream = TcpStream::from_std(stream);
        io.registry
            .register(
                &mut stream,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(HttpError::Io)?;
        self.stream = Some(stream);
        // A connected socket has room to write, and the registration
        // reports any other readiness that it already has.
        self.readable = false;
        self.writable = true;
        Ok(())
    }
}

/// Writes what is left of the request while the socket takes it. Returns
/// whether the whole request is written.
fn write_request(
    stream: &mut TcpStream,
    flight: &mut InFlight,
    writable: &mut bool,
) -> Result<bool, HttpError> {
    while flight.written < flight.request.len() {
        if !*writable {
            return Ok(false);
        }
        match stream.write(&flight.request[flight.written..]) {
            Ok(0) => return Err(HttpError::Io(io::ErrorKind::WriteZero.into())),
            Ok(written) => flight.written += written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => *writable = false,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(classify(error, true, flight.budget)),
        }
    }
    Ok(true)
}

/// Reads until the response is complete or the socket has no more bytes.
fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    readable: &mut bool,
    chunk: &mut [u8],
    budget: Duration,
) -> Result<Option<Response>, HttpError> {
    loop {
        match stream.read(chunk) {
            Ok(0) => return finish_at_eof(buffer).map(Some),
            Ok(read) => {
                buffer.extend_from_slice(&chunk[..read]);
                if let Parsed::Complete { response, consumed } =
                    parse_response(buffer, false).map_err(HttpError::InvalidResponse)?
                {
                    buffer.drain(..consumed);
                    // A short read emptied the socket. Linux reports the next
                    // arrival as a new edge, so the read that would only
                    // return WouldBlock is skipped.
                    if read < chunk.len() {
                        *readable = false;
                    }
                    return Ok(Some(response));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                *readable = false;
                return Ok(None);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(classify(error, buffer.is_empty(), budget)),
        }
    }
}
