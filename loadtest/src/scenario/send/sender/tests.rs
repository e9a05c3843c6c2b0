//! Tests of the senders against a small HTTP server on 127.0.0.1 that
//! records each request line and bearer token and returns an event ID.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use super::{Plan, encode_send, run_senders};
use crate::{
    matrix::{RegistrationAuth, Session},
    pacing::Pacing,
    progress::Progress,
    setup::{Context, World},
    target::Target,
};

/// Request line and bearer token of each request that the server received.
type Received = Arc<Mutex<Vec<(String, String)>>>;

fn target(addr: SocketAddr) -> Target {
    Target {
        addrs: vec![addr],
        host_header: addr.to_string(),
        base_path: String::new(),
    }
}

fn session(number: usize) -> Session {
    Session {
        user_id: format!("@u{number}:x"),
        access_token: format!("token-{number}"),
        device_id: "D".to_owned(),
    }
}

fn context(addr: SocketAddr) -> Context {
    Context {
        url: format!("http://{addr}"),
        target: target(addr),
        timeout: Duration::from_secs(5),
        seed: 3,
        auth: RegistrationAuth::Dummy,
        user_prefix: "loadtest".to_owned(),
        state_path: None::<PathBuf>,
    }
}

/// Reads one request and returns its request line and bearer token, or
/// `None` when the client closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let (mut token, mut length) = (String::new(), 0);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Authorization: Bearer ") {
            token = value.to_owned();
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((request_line.trim_end().to_owned(), token))
}

/// Starts a server that returns `{"event_id": "$N"}` to request N, or a 403
/// `M_FORBIDDEN` error to every request when `forbid` is set.
fn start_server(forbid: bool) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let log = Arc::clone(&received);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(request) = read_request(&mut reader) {
                    let number = {
                        let mut log = log.lock().unwrap();
                        log.push(request);
                        log.len()
                    };
                    let (status, body) = if forbid {
                        (
                            "403 Forbidden",
                            r#"{"errcode":"M_FORBIDDEN","error":"no"}"#.to_owned(),
                        )
                    } else {
                        ("200 OK", format!(r#"{{"event_id":"${number}"}}"#))
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    writer.write_all(head.as_bytes()).unwrap();
                    writer.write_all(body.as_bytes()).unwrap();
                }
            });
        }
    });
    (addr, received)
}

fn world(users: usize) -> World {
    World {
        users: (0..users).map(session).collect(),
        rooms: vec!["!a:x".to_owned(), "!b:x".to_owned()],
    }
}

#[test]
fn closed_loop_sends_each_index_once() {
    let (addr, received) = start_server(false);
    let ctx = context(addr);
    let world = world(2);
    let pacing = Pacing::new(None, Instant::now(), 3);
    let progress = Progress::default();
    let plan = Plan {
        ctx: &ctx,
        world: &world,
        pacing: &pacing,
        messages: 30,
        deadline: Instant::now() + Duration::from_secs(30),
        run_id: 77,
        progress: &progress,
    };
    let tally = run_senders(&plan, 0..3).unwrap();
    assert_eq!(tally.succeeded(), 30);
    assert_eq!(tally.failed(), 0);
    assert_eq!(tally.missed, 0);

    let received = received.lock().unwrap();
    let mut txn_ids: Vec<u64> = received
        .iter()
        .map(|(line, _)| {
            let path = line.split(' ').nth(1).unwrap();
            let txn_id = path.rsplit('/').next().unwrap();
            txn_id.strip_prefix("77-").unwrap().parse().unwrap()
        })
        .collect();
    txn_ids.sort_unstable();
    assert_eq!(txn_ids, (0..30).collect::<Vec<u64>>());
    // Senders 0 and 2 send as user 0, and sender 1 as user 1.
    let tokens: Vec<&str> = received.iter().map(|(_, token)| token.as_str()).collect();
    assert!(tokens.contains(&"token-0"));
    assert!(tokens.contains(&"token-1"));
}

#[test]
fn open_loop_keeps_the_schedule() {
    let (addr, received) = start_server(false);
    let ctx = context(addr);
    let world = world(1);
    let start = Instant::now();
    let pacing = Pacing::new(Some(200.0), start, 2);
    let progress = Progress::default();
    let plan = Plan {
        ctx: &ctx,
        world: &world,
        pacing: &pacing,
        messages: 20,
        deadline: start + Duration::from_secs(30),
        run_id: 5,
        progress: &progress,
    };
    let (first, second) = thread::scope(|scope| {
        let first = scope.spawn(|| run_senders(&plan, 0..1).unwrap());
        let second = scope.spawn(|| run_senders(&plan, 1..2).unwrap());
        (first.join().unwrap(), second.join().unwrap())
    });
    // The last of 20 sends at 200/s is due 95 ms after the start.
    assert!(start.elapsed() >= Duration::from_millis(95));
    assert_eq!(first.succeeded(), 10);
    assert_eq!(second.succeeded(), 10);
    assert_eq!(first.start_lag_us.len(), 10);
    assert_eq!(received.lock().unwrap().len(), 20);
}

#[test]
fn error_responses_are_counted_by_errcode() {
    let (addr, _) = start_server(true);
    let ctx = context(addr);
    let world = world(1);
    let pacing = Pacing::new(None, Instant::now(), 1);
    let progress = Progress::default();
    let plan = Plan {
        ctx: &ctx,
        world: &world,
        pacing: &pacing,
        messages: 4,
        deadline: Instant::now() + Duration::from_secs(30),
        run_id: 1,
        progress: &progress,
    };
    let tally = run_senders(&plan, 0..1).unwrap();
    assert_eq!(tally.succeeded(), 0);
    let errors = &tally.ops["send"].errors;
    assert_eq!(errors["M_FORBIDDEN"].count, 4);
    assert!(errors["M_FORBIDDEN"].first_message.starts_with('!'));
}

#[test]
fn refused_connects_pause_the_sender() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ctx = context(addr);
    let world = world(1);
    let start = Instant::now();
    let pacing = Pacing::new(None, start, 1);
    let progress = Progress::default();
    let plan = Plan {
        ctx: &ctx,
        world: &world,
        pacing: &pacing,
        messages: 5,
        deadline: start + Duration::from_secs(30),
        run_id: 1,
        progress: &progress,
    };
    let tally = run_senders(&plan, 0..1).unwrap();
    assert_eq!(tally.ops["send"].errors["connect failed"].count, 5);
    // Each of the five failures is followed by a 10 ms pause.
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn encoded_send_has_txn_id_and_text() {
    let target = Target {
        addrs: Vec::new(),
        host_header: "127.0.0.1:8008".to_owned(),
        base_path: "/base".to_owned(),
    };
    let request = encode_send(&target, &session(4), "!r:x", 1700, 42);
    let text = String::from_utf8(request).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();

    let request_line = "PUT /base/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/1700-42";
    assert!(head.starts_with(request_line), "{head}");
    assert!(
        head.contains("\r\nAuthorization: Bearer token-4\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nHost: 127.0.0.1:8008\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, r#"{"body":"loadtest message 42","msgtype":"m.text"}"#);
}
