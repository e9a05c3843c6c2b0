"""HTTP/1.1 framing and connection lifecycle: timeouts, conflicting framing
headers, header limits, the auth scheme, and shutdown during a long-poll."""

from __future__ import annotations

import signal
import socket
import threading
import time

import requests

from harness import assert_error, client_path, expect_ok


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Read everything until the server closes; return the bytes and the time taken."""
    sock.settimeout(limit_s)
    started = time.monotonic()
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return received, float("inf")
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def test_idle_connection_closed_after_timeout(start_server):
    hs = start_server(extra_args=("--idle-timeout-secs", "1", "--request-timeout-secs", "1"))
    with socket.create_connection(("127.0.0.1", hs.port)) as sock:
        _, elapsed = read_until_closed(sock, 5)
    assert elapsed < 4, "an idle connection stayed open past its timeout"


def test_partial_request_closed_after_timeout(start_server):
    hs = start_server(extra_args=("--idle-timeout-secs", "30", "--request-timeout-secs", "1"))
    with socket.create_connection(("127.0.0.1", hs.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        _, headers_elapsed = read_until_closed(sock, 5)
    with socket.create_connection(("127.0.0.1", hs.port)) as sock:
        sock.sendall(b"POST /_matrix/client/v3/login HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        _, body_elapsed = read_until_closed(sock, 5)
    assert headers_elapsed < 4, "a connection with partial headers was never closed"
    assert body_elapsed < 4, "a connection with a partial body was never closed"
    assert hs.get("/health").status_code == 200


def raw_exchange(hs, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", hs.port)) as sock:
        sock.sendall(request)
        received, _ = read_until_closed(sock, 10)
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1") else 0
    return status, received


def test_conflicting_content_lengths_rejected(hs):
    status, received = raw_exchange(
        hs,
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nContent-Length: 2\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\n{}",
    )
    assert status == 400, received
    assert b'"errcode"' in received


def test_chunked_with_content_length_closes(hs):
    """RFC 9112 6.1: chunked framing wins and the connection closes after the response."""
    with socket.create_connection(("127.0.0.1", hs.port)) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n"
        )
        received, elapsed = read_until_closed(sock, 5)
    assert received.startswith(b"HTTP/1.1 200"), received
    assert b"connection: close" in received.lower()
    assert elapsed < 4, "the server kept the connection open"


def test_too_many_headers_is_431(hs):
    headers = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(100))
    status, received = raw_exchange(hs, b"GET /health HTTP/1.1\r\n" + headers + b"\r\n")
    assert status == 431, received
    assert b"M_TOO_LARGE" in received


def test_bearer_scheme_case_insensitive(hs):
    account = hs.register_on_shard("bearer-case", 0)
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = requests.get(
            hs.url + client_path("account/whoami"),
            headers={"Authorization": f"{scheme} {account.access_token}"},
            timeout=10,
        )
        assert response.status_code == 200, (scheme, response.text)


def wait_for_sync_waiter(hs, limit_s: float = 10.0) -> None:
    """Wait until some shard reports a waiting /sync, so a signal cannot arrive first."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        text = requests.get(hs.url + "/metrics", timeout=5).text
        waiting = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("eltrix_shard_sync_waiters{")
        )
        if waiting >= 1:
            return
        time.sleep(0.02)
    raise AssertionError(f"no /sync request was waiting after {limit_s} s")


def test_sigterm_answers_long_polls(start_server):
    hs = start_server()
    bob = hs.register_on_shard("shutdown-poll", 1)
    since = bob.sync()["next_batch"]
    outcome: dict = {}

    def poll() -> None:
        try:
            response = requests.get(
                hs.url + client_path("sync"),
                params={"since": since, "timeout": "20000"},
                headers={"Authorization": f"Bearer {bob.access_token}"},
                timeout=30,
            )
            outcome["status"] = response.status_code
        except requests.RequestException as error:
            outcome["error"] = repr(error)

    thread = threading.Thread(target=poll)
    thread.start()
    wait_for_sync_waiter(hs)
    started = time.monotonic()
    hs.process.send_signal(signal.SIGTERM)
    exit_code = hs.process.wait(timeout=15)
    thread.join(timeout=15)
    assert exit_code == 0
    assert time.monotonic() - started < 5, "shutdown waited for the long-poll timeout"
    assert outcome.get("status") == 200, f"the long-poll was not answered: {outcome}"


def test_invite_remote_and_unknown_users_rejected(hs):
    alice = hs.register_on_shard("invite-checks", 0)
    room_id = alice.create_room()
    remote = alice.post(client_path(f"rooms/{room_id}/invite"), {"user_id": "@x:example.org"})
    assert_error(remote, 403, "M_FORBIDDEN")
    unknown = alice.post(client_path(f"rooms/{room_id}/invite"), {"user_id": "@ghost-nobody:localhost"})
    assert_error(unknown, 404, "M_NOT_FOUND")


def test_messages_without_dir_is_missing_param(hs):
    alice = hs.register_on_shard("messages-dir", 0)
    room_id = alice.create_room()
    assert_error(alice.get(client_path(f"rooms/{room_id}/messages")), 400, "M_MISSING_PARAM")


def test_first_uia_response_has_no_errcode(hs):
    response = hs.post(client_path("register"), {"username": "uia-first", "password": "pw"})
    assert response.status_code == 401
    body = response.json()
    assert "errcode" not in body, body
    assert body["flows"] and body["session"]
    expect_ok(hs.get("/health"))


def test_head_response_has_no_body(hs):
    with socket.create_connection((hs.host, hs.port), timeout=5) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    first, _, rest = received.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 ")
    # The next bytes are the second response, not a body of the first.
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]
