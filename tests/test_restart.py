"""Crash and restart: nothing acknowledged with 200 may be lost, whatever the new shard count."""

from __future__ import annotations

import signal
import subprocess
import threading
from dataclasses import dataclass, field

import requests

from harness import (
    SHARD_HEADER,
    WIDE_TIMELINE,
    Account,
    Homeserver,
    assert_error,
    event_ids,
    expect_ok,
    joined_timeline,
    message_bodies,
    q,
    shard_of,
    shows_event,
    unique,
)

MESSAGES_PER_PHASE = 20


@dataclass
class Credentials:
    user_id: str
    access_token: str
    device_id: str
    password: str

    @classmethod
    def of(cls, account: Account) -> "Credentials":
        return cls(
            account.user_id, account.access_token, account.device_id, account.password
        )

    def on(self, hs: Homeserver) -> Account:
        return hs.account(
            self.user_id, self.access_token, self.device_id, self.password
        )


@dataclass
class Snapshot:
    """What the server acknowledged before it was killed."""

    users: dict[str, Credentials]
    joined_rooms: dict[str, set[str]]  # user name -> room IDs
    members: dict[str, dict[str, str]]  # room ID -> user ID -> membership
    reader: dict[str, str]  # room ID -> name of a user joined to it
    public_room: str
    sent: dict[str, list[str]] = field(
        default_factory=dict
    )  # room ID -> event IDs, oldest first
    bodies: dict[str, str] = field(default_factory=dict)  # event ID -> message body
    since: str = ""  # a /sync token of bob's, taken between the two send phases
    after_since: dict[str, list[str]] = field(
        default_factory=dict
    )  # room ID -> event IDs

    def send(self, sender: Account, room_id: str, body: str, after_since: bool) -> None:
        event_id = sender.send_message(room_id, body)
        self.sent[room_id].append(event_id)
        self.bodies[event_id] = body
        if after_since:
            self.after_since[room_id].append(event_id)


def populate(hs: Homeserver) -> Snapshot:
    """Register users, create rooms with memberships and send messages in two phases.

    Returns as soon as the last send is acknowledged, so the caller can kill the
    server right after that 200.
    """
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    carol = hs.register_on_shard("carol", 0)

    public = alice.create_room(preset="public_chat", name="Public")
    bob.join(public)
    private = bob.create_room(
        preset="private_chat", invite=[alice.user_id, carol.user_id]
    )
    alice.join(private)
    left = carol.create_room(preset="public_chat")
    alice.join(left)
    alice.leave(left)

    snapshot = Snapshot(
        users={
            name: Credentials.of(a)
            for name, a in (("alice", alice), ("bob", bob), ("carol", carol))
        },
        joined_rooms={
            "alice": {public, private},
            "bob": {public, private},
            "carol": {left},
        },
        members={
            public: {alice.user_id: "join", bob.user_id: "join"},
            private: {
                bob.user_id: "join",
                alice.user_id: "join",
                carol.user_id: "invite",
            },
            left: {carol.user_id: "join", alice.user_id: "leave"},
        },
        reader={public: "bob", private: "alice", left: "carol"},
        public_room=public,
    )
    for room_id in (public, private):
        snapshot.sent[room_id] = []
        snapshot.after_since[room_id] = []

    conversation = [(alice, public), (bob, private), (bob, public), (alice, private)]
    for index in range(MESSAGES_PER_PHASE):
        sender, room_id = conversation[index % len(conversation)]
        snapshot.send(sender, room_id, f"before {index}", after_since=False)

    last_before = snapshot.sent[private][-1]
    synced = bob.initial_sync_until(
        shows_event(private, last_before), filter=WIDE_TIMELINE
    )
    snapshot.since = synced["next_batch"]

    for index in range(MESSAGES_PER_PHASE):
        sender, room_id = conversation[index % len(conversation)]
        snapshot.send(sender, room_id, f"after {index}", after_since=True)
    return snapshot


def assert_nothing_lost(hs: Homeserver, snapshot: Snapshot) -> None:
    users = {name: creds.on(hs) for name, creds in snapshot.users.items()}

    for name, account in users.items():
        resp = account.get("account/whoami")
        whoami = expect_ok(resp)
        assert whoami["user_id"] == account.user_id, (
            f"{name}'s old access token maps to another user"
        )
        assert whoami["device_id"] == account.device_id
        owner = shard_of(account.user_id, hs.shards)
        assert resp.headers.get(SHARD_HEADER) == str(owner), (
            f"whoami for {name} ran off its shard"
        )

    for name, rooms in snapshot.joined_rooms.items():
        assert users[name].joined_rooms() == rooms, f"{name}'s joined rooms changed"

    for room_id, members in snapshot.members.items():
        reader = users[snapshot.reader[room_id]]
        joined = {user for user, membership in members.items() if membership == "join"}
        assert reader.joined_members(room_id) == joined, (
            f"joined members of {room_id} changed"
        )
        for user_id, membership in members.items():
            assert reader.membership(room_id, user_id) == membership, (
                f"{user_id} in {room_id}"
            )

    for room_id, sent in snapshot.sent.items():
        reader = users[snapshot.reader[room_id]]
        for event_id in sent:
            event = reader.event(room_id, event_id)
            assert event["content"]["body"] == snapshot.bodies[event_id], (
                f"event {event_id} changed"
            )
        history = [
            e
            for e in reader.paginate(room_id, "b", limit=25)
            if e["type"] == "m.room.message"
        ]
        assert event_ids(history) == list(reversed(sent)), (
            f"/messages of {room_id} lost or reordered events"
        )

    incremental = users["bob"].sync(since=snapshot.since, filter=WIDE_TIMELINE)
    for room_id, expected in snapshot.after_since.items():
        timeline = event_ids(joined_timeline(incremental, room_id))
        missing = [event_id for event_id in expected if event_id not in timeline]
        assert not missing, (
            f"sync from the old since token lost {len(missing)} events of {room_id}"
        )
        expected_set = set(expected)
        in_order = [event_id for event_id in timeline if event_id in expected_set]
        assert in_order == expected, (
            f"sync from the old since token reordered events of {room_id}"
        )
        assert len(set(timeline)) == len(timeline), (
            "sync from the old since token repeated an event"
        )


def kill_and_check(hs: Homeserver) -> None:
    hs.kill()
    assert hs.process.returncode == -signal.SIGKILL


def test_kill_then_reshard(start_server):
    """Kill on 2 shards, restart on 3, add messages, kill again and restart on 1."""
    first = start_server(shards=2)
    snapshot = populate(first)
    kill_and_check(first)

    second = start_server(shards=3, data_dir=first.data_dir)
    assert_nothing_lost(second, snapshot)

    bob = snapshot.users["bob"].on(second)
    for index in range(5):
        snapshot.send(
            bob, snapshot.public_room, f"on three shards {index}", after_since=True
        )
    kill_and_check(second)

    third = start_server(shards=1, data_dir=first.data_dir)
    assert_nothing_lost(third, snapshot)


def test_kill_during_concurrent_sends(start_server):
    """Every send acknowledged before SIGKILL is readable after the restart."""
    first = start_server(shards=2)
    alice = first.register_on_shard("alice", 0)
    bob = first.register_on_shard("bob", 1)
    rooms = [
        alice.create_room_on_shard(shard, preset="public_chat") for shard in (0, 1)
    ]
    for room_id in rooms:
        bob.join(room_id)

    acked: dict[str, list[tuple[str, str]]] = {room_id: [] for room_id in rooms}
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def keep_sending(account: Account, room_id: str) -> None:
        session = requests.Session()
        for index in range(1000):
            if stop.is_set():
                return
            body = f"{account.localpart} {index}"
            url = f"{first.url}/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{unique('txn')}"
            try:
                resp = session.put(
                    url,
                    json={"msgtype": "m.text", "body": body},
                    headers={"Authorization": f"Bearer {account.access_token}"},
                    timeout=10,
                )
            except requests.RequestException:
                return  # the server was killed while this send was in flight
            if resp.status_code != 200:
                return
            with lock:
                acked[room_id].append((resp.json()["event_id"], body))
                if sum(len(events) for events in acked.values()) >= 60:
                    enough.set()

    senders = [
        threading.Thread(target=keep_sending, args=(account, room_id))
        for account in (alice, bob)
        for room_id in rooms
    ]
    for sender in senders:
        sender.start()
    assert enough.wait(timeout=120), (
        "fewer than 60 sends were acknowledged within 120 s"
    )
    first.kill()
    stop.set()
    for sender in senders:
        sender.join(timeout=30)

    second = start_server(shards=2, data_dir=first.data_dir)
    reader = Credentials.of(alice).on(second)
    for room_id, events in acked.items():
        for event_id, body in events:
            assert reader.event(room_id, event_id)["content"]["body"] == body
        stored = set(event_ids(reader.paginate(room_id, "b", limit=50)))
        lost = [event_id for event_id, _ in events if event_id not in stored]
        assert not lost, f"/messages of {room_id} lost {len(lost)} acknowledged events"


def test_sigterm_exits_cleanly(start_server):
    first = start_server(shards=2)
    alice = first.register_on_shard("alice", 0)
    room_id = alice.create_room()
    event_id = alice.send_message(room_id, "before sigterm")

    assert first.stop() == 0, (
        "the server did not exit with status 0 within 10 s of SIGTERM"
    )

    second = start_server(shards=2, data_dir=first.data_dir)
    reader = Credentials.of(alice).on(second)
    assert reader.event(room_id, event_id)["content"]["body"] == "before sigterm"


def test_sigint_exits_cleanly(start_server):
    first = start_server(shards=2)
    first.register_on_shard("alice", 1)
    first.process.send_signal(signal.SIGINT)
    try:
        status = first.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the server was still running 10 s after SIGINT") from None
    assert status == 0


def test_login_after_restart(start_server):
    first = start_server(shards=2)
    alice = first.register_on_shard("alice", 1)
    kill_and_check(first)

    second = start_server(shards=3, data_dir=first.data_dir)
    again = second.login(alice.localpart, alice.password)
    assert again.user_id == alice.user_id
    resp = second.post(
        "register", {"username": alice.localpart, "password": "pw-other-1"}
    )
    assert_error(resp, 400, "M_USER_IN_USE")


def test_txn_dedup_survives_restart(start_server):
    """A client retrying a send after a crash must not create a second event."""
    first = start_server(shards=2)
    alice = first.register_on_shard("alice", 0)
    room_id = alice.create_room()
    txn_id = unique("txn")
    event_id = alice.send_message(room_id, "sent once", txn_id)
    kill_and_check(first)

    second = start_server(shards=2, data_dir=first.data_dir)
    retried = Credentials.of(alice).on(second)
    assert retried.send_message(room_id, "sent once", txn_id) == event_id
    bodies = message_bodies(retried.paginate(room_id, "b", limit=50))
    assert bodies.count("sent once") == 1
