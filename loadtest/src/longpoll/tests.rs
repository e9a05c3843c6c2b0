//! Tests of the event loop against small HTTP servers on 127.0.0.1 that run
//! on their own threads.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use super::{Handler, Next, run};
use crate::{
    http::{HttpError, Response, encode_request},
    target::Target,
};

/// A handler whose members each send `requests` requests one after the
/// other, waiting `pause` before each request after the first, and keep
/// every result.
struct Script {
    target: Target,
    requests: usize,
    body_bytes: usize,
    timeout: Duration,
    pause: Duration,
    sent: Vec<usize>,
    waited: Vec<bool>,
    results: Vec<Vec<(Result<Response, HttpError>, Instant)>>,
}

impl Script {
    fn new(target: Target, members: usize, requests: usize) -> Self {
        Self {
            target,
            requests,
            body_bytes: 0,
            timeout: Duration::from_secs(5),
            pause: Duration::ZERO,
            sent: vec![0; members],
            waited: vec![false; members],
            results: (0..members).map(|_| Vec::new()).collect(),
        }
    }

    fn run(&mut self) {
        let target = self.target.clone();
        let members = self.sent.len();
        run(&target, members, self).unwrap();
    }
}

impl Handler for Script {
    fn next(&mut self, member: usize, now: Instant) -> Next {
        if self.sent[member] == self.requests {
            return Next::Done;
        }
        if self.sent[member] > 0 && !self.pause.is_zero() && !self.waited[member] {
            self.waited[member] = true;
            return Next::WaitUntil(now + self.pause);
        }
        self.waited[member] = false;
        self.sent[member] += 1;
        let body = vec![b'x'; self.body_bytes];
        let host = &self.target.host_header;
        Next::Send {
            request: encode_request("POST", host, "/echo", None, &body),
            deadline: now + self.timeout,
        }
    }

    fn complete(&mut self, member: usize, result: Result<Response, HttpError>, at: Instant) {
        self.results[member].push((result, at));
    }
}

fn target(addr: SocketAddr) -> Target {
    Target {
        addrs: vec![addr],
        host_header: addr.to_string(),
        base_path: String::new(),
    }
}

/// Reads one request with a `Content-Length` body; returns its body length,
/// or `None` when the client closed the connection.
fn read_request(stream: &mut TcpStream) -> Option<usize> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                return Some(length);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Starts a server that responds to each request with a JSON body of
/// `response_bytes` bytes, and closes connection N (from 0) without a word
/// after `responses(N)` responses. Returns its address and the number of
/// connections it accepted.
fn start_server(
    responses: fn(usize) -> usize,
    response_bytes: usize,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let connection = counter.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                for _ in 0..responses(connection) {
                    let Some(length) = read_request(&mut stream) else {
                        return;
                    };
                    let mut body = format!("{{\"n\":{length}}}");
                    let padding = response_bytes.saturating_sub(body.len());
                    body.extend(std::iter::repeat_n(' ', padding));
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                }
            });
        }
    });
    (addr, accepted)
}

fn response_of(result: &Result<Response, HttpError>) -> &Response {
    match result {
        Ok(response) => response,
        Err(error) => panic!("request failed: {error}"),
    }
}

#[test]
fn keep_alive_connection_is_reused() {
    let (addr, accepted) = start_server(|_| usize::MAX, 0);
    let mut script = Script::new(target(addr), 3, 4);
    script.run();
    for results in &script.results {
        assert_eq!(results.len(), 4);
        for (result, _) in results {
            assert_eq!(response_of(result).status, 200);
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn closed_idle_connection_is_resent_once() {
    let (addr, accepted) = start_server(|_| 1, 0);
    let mut script = Script::new(target(addr), 1, 3);
    script.run();
    let results = &script.results[0];
    assert_eq!(results.len(), 3);
    for (result, _) in results {
        assert_eq!(response_of(result).body, b"{\"n\":0}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn resend_happens_only_once() {
    let (addr, accepted) = start_server(|connection| usize::from(connection == 0), 0);
    let mut script = Script::new(target(addr), 1, 2);
    script.run();
    let results = &script.results[0];
    assert_eq!(response_of(&results[0].0).status, 200);
    assert!(
        matches!(results[1].0, Err(HttpError::ClosedBeforeResponse)),
        "{:?}",
        results[1].0
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn large_request_and_response_complete() {
    // Larger than the socket buffers, so writes and reads come in parts.
    let (addr, _) = start_server(|_| usize::MAX, 4 * 1024 * 1024);
    let mut script = Script::new(target(addr), 2, 2);
    script.body_bytes = 8 * 1024 * 1024;
    script.run();
    for results in &script.results {
        assert_eq!(results.len(), 2);
        for (result, _) in results {
            let body = &response_of(result).body;
            assert_eq!(body.len(), 4 * 1024 * 1024);
            assert!(body.starts_with(b"{\"n\":8388608}"));
        }
    }
}

#[test]
fn silent_server_times_out_at_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut script = Script::new(target(listener.local_addr().unwrap()), 2, 1);
    script.timeout = Duration::from_millis(50);
    let started = Instant::now();
    script.run();
    for results in &script.results {
        let (result, at) = &results[0];
        assert!(matches!(result, Err(HttpError::TimedOut(_))), "{result:?}");
        assert!(*at - started >= Duration::from_millis(50));
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn refused_connect_fails_at_once() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut script = Script::new(target(addr), 1, 2);
    script.run();
    let results = &script.results[0];
    assert_eq!(results.len(), 2);
    for (result, _) in results {
        assert!(
            matches!(result, Err(HttpError::Connect { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn wait_until_delays_next_request() {
    let (addr, _) = start_server(|_| usize::MAX, 0);
    let mut script = Script::new(target(addr), 2, 3);
    script.pause = Duration::from_millis(30);
    script.run();
    for results in &script.results {
        assert_eq!(results.len(), 3);
        for pair in results.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(30));
        }
    }
}
