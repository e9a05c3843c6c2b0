"""Request rate limits: 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After."""

from __future__ import annotations

import subprocess
import time

import requests

from harness import assert_error, create_admin_cli, default_binary, expect_ok, q, unique

# Tight buckets so a burst runs out within a test: 3 at once, 2 per second.
LIMITS = """
[rate_limits]
enabled = true
message = { per_user = { per_second = 2.0, burst = 3.0 } }
create_room = { per_user = { per_second = 2.0, burst = 2.0 } }
join = { per_user = { per_second = 2.0, burst = 2.0 } }
registration = { per_ip = { per_second = 100.0, burst = 100.0 } }
login = { per_ip = { per_second = 2.0, burst = 3.0 } }
"""


def limited_server(start_server, tmp_path, limits: str = LIMITS):
    config = tmp_path / "limits.toml"
    config.write_text(limits)
    return start_server(rate_limits=True, extra_args=("--config", str(config)))


def send(account, room_id: str) -> requests.Response:
    path = f"rooms/{q(room_id)}/send/m.room.message/{q(unique('txn'))}"
    return account.put(path, {"msgtype": "m.text", "body": "hi"})


def assert_limited(resp: requests.Response) -> int:
    body = assert_error(resp, 429, "M_LIMIT_EXCEEDED")
    retry_after_ms = body["retry_after_ms"]
    assert isinstance(retry_after_ms, int)
    assert 0 < retry_after_ms <= 1000
    assert int(resp.headers["Retry-After"]) >= 1
    return retry_after_ms


def test_burst_refused_then_allowed_after_retry(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    room_id = alice.create_room()
    for _ in range(3):
        expect_ok(send(alice, room_id))
    retry_after_ms = assert_limited(send(alice, room_id))
    time.sleep(retry_after_ms / 1000)
    expect_ok(send(alice, room_id))


def test_refused_send_stores_nothing(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 1)
    room_id = alice.create_room()
    sent = [expect_ok(send(alice, room_id))["event_id"] for _ in range(3)]
    assert_limited(send(alice, room_id))
    chunk = alice.messages(room_id, dir="b", limit=50)["chunk"]
    messages = [event["event_id"] for event in chunk if event["type"] == "m.room.message"]
    assert sorted(messages) == sorted(sent)


def test_limits_are_per_user(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    for _ in range(3):
        expect_ok(send(alice, room_id))
    assert_limited(send(alice, room_id))
    expect_ok(send(bob, room_id))


def test_refused_room_creation_claims_no_alias(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    alice.create_room()
    alice.create_room()
    name = unique("limited")
    resp = alice.post("createRoom", {"room_alias_name": name})
    assert_limited(resp)
    resp = alice.get(f"directory/room/{q(f'#{name}:localhost')}")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert len(alice.joined_rooms()) == 2


def test_joins_are_limited(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    rooms = [alice.create_room(preset="public_chat") for _ in range(2)]
    time.sleep(1.1)
    third = alice.create_room(preset="public_chat")
    for room_id in rooms:
        bob.join(room_id)
    assert_limited(bob.post(f"join/{q(third)}"))
    assert third not in bob.joined_rooms()


def test_login_limited_per_address(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.localpart},
        "password": "wrong password",
    }
    statuses = [hs.post("login", body).status_code for _ in range(3)]
    assert statuses == [403, 403, 403]
    assert_limited(hs.post("login", body))


def test_admin_is_exempt(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    hs.stop()
    password_file = tmp_path / "admin-password"
    password_file.write_text("admin-password-1\n")
    result = create_admin_cli(hs.data_dir, "root", "--password-file", str(password_file))
    assert result.returncode == 0, result.stderr
    config = tmp_path / "limits.toml"
    server = start_server(rate_limits=True, data_dir=hs.data_dir, extra_args=("--config", str(config)))
    admin = server.login("root", "admin-password-1")
    room_id = admin.create_room()
    for _ in range(6):
        expect_ok(send(admin, room_id))


def test_disabled_limits_allow_bursts(start_server):
    hs = start_server()
    alice = hs.register_on_shard("alice", 0)
    room_id = alice.create_room()
    for _ in range(30):
        expect_ok(send(alice, room_id))


def test_invalid_limit_config_is_rejected(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[rate_limits]\nmessage = { per_user = { per_second = 0.0, burst = 3.0 } }\n")
    result = subprocess.run(
        [str(default_binary()), "--config", str(config), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "rate_limits.message.per_user" in result.stderr


def test_upgrade_counts_as_room_creation(start_server, tmp_path):
    hs = limited_server(start_server, tmp_path)
    alice = hs.register_on_shard("alice", 0)
    room_id = alice.create_room()
    new_room = expect_ok(alice.post(f"rooms/{q(room_id)}/upgrade", {"new_version": "12"}))
    assert new_room["replacement_room"]
    assert_limited(alice.post(f"rooms/{q(room_id)}/upgrade", {"new_version": "12"}))
