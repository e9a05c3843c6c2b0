"""Incremental /sync timelines served from each room's in-memory tail.

A shard keeps the newest 16 events of each room announced to it, and an
incremental /sync of a user joined throughout the window reads its timeline
from that tail when the tail reaches back far enough. The result must equal
what the store returns: the same events, the same `limited` flag and a
`prev_batch` from which /messages continues without skipping or repeating
an event.

Each test records every event of its rooms in the order the room's shard
appended them, takes sync tokens between sends, and checks the window of
every token for several timeline limits. Windows of up to 16 events come
from the tail, longer ones and windows after a restart from the store.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from harness import (
    Account,
    event_ids,
    expect_ok,
    joined_room,
    q,
)

# `hs` is the module-scoped server fixture with shared-secret registration.
from test_admin import admin_path, hs, register_with_secret  # noqa: F401

# Timeline limits checked for every token: a single event, the default,
# one less than the tail and more than the tail.
LIMITS = [1, 10, 15, 50]

# Events per burst: one less than the tail, the tail, one more, and a
# burst that only the store can serve.
BURSTS = [15, 16, 17, 40]

# Events that a prev_batch check pages back through, at most.
PAGE_BACK = 20

# Seconds between the last event a purge deletes and the first one it keeps,
# so that origin_server_ts separates them.
PURGE_GAP = 0.05


def quiet_filter(room_ids: list[str], limit: int) -> dict:
    """Build a filter for `room_ids` only, without presence and account data."""
    return {
        "room": {"rooms": room_ids, "timeline": {"limit": limit}},
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    }


@dataclass
class RoomLog:
    """Every event of one room, oldest first, as the tests sent them."""

    room_id: str
    ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, account: Account, room_id: str) -> "RoomLog":
        """Start a log with the room's history as /messages returns it."""
        newest_first = account.paginate(room_id, "b", limit=50)
        return cls(room_id, list(reversed(event_ids(newest_first))))

    def send(self, account: Account, body: str) -> str:
        event_id = account.send_message(self.room_id, body)
        self.ids.append(event_id)
        return event_id

    def burst(self, account: Account, prefix: str, count: int) -> list[str]:
        return [self.send(account, f"{prefix} {index}") for index in range(count)]


@dataclass
class Token:
    """A sync token and the number of events of each room sent before it."""

    since: str
    counts: dict[str, int]


def take_token(account: Account, logs: list[RoomLog]) -> Token:
    """Wait until `account`'s shard has every event sent so far to the rooms
    of `logs`, and return a sync token taken then."""
    newest = {log.room_id: log.ids[-1] for log in logs}
    room_ids = list(newest)

    def has_newest(body: dict) -> bool:
        return all(
            event_ids(joined_room(body, room_id).get("timeline", {}).get("events", []))
            == [event_id]
            for room_id, event_id in newest.items()
        )

    body = account.initial_sync_until(has_newest, filter=quiet_filter(room_ids, 1))
    return Token(body["next_batch"], {log.room_id: len(log.ids) for log in logs})


@dataclass
class Window:
    """What one incremental sync returned for one room."""

    events: list[str]
    limited: bool
    prev_batch: str | None


def read_window(account: Account, room_id: str, since: str, limit: int) -> Window:
    body = account.sync(since=since, filter=quiet_filter([room_id], limit))
    room = joined_room(body, room_id)
    if not room:
        return Window([], False, None)
    timeline = room["timeline"]
    return Window(
        event_ids(timeline["events"]),
        timeline.get("limited", False),
        timeline.get("prev_batch"),
    )


def check_window(
    account: Account, log: RoomLog, token: Token, limit: int
) -> Window:
    """Check one incremental sync against the events sent after `token`.

    The timeline must contain the newest `limit` of them, `limited` must be
    true exactly when some were left out, and /messages must continue from
    `prev_batch` in both directions without a gap or a repeat.
    """
    expected = log.ids[token.counts[log.room_id]:]
    window = read_window(account, log.room_id, token.since, limit)
    where = f"{log.room_id} since {token.since} with limit {limit}"

    assert window.events == expected[-limit:], (
        f"timeline of {where}: got {window.events}, expected {expected[-limit:]}"
    )
    assert window.limited == (len(expected) > limit), (
        f"limited of {where} is {window.limited} for {len(expected)} new events"
    )
    if not window.events:
        return window

    assert window.prev_batch, f"no prev_batch in {where}"
    forward = account.messages(
        log.room_id, dir="f", limit=len(window.events), **{"from": window.prev_batch}
    )
    assert event_ids(forward["chunk"]) == window.events, (
        f"/messages forwards from the prev_batch of {where} is not the timeline"
    )
    older = log.ids[: len(log.ids) - len(window.events)]
    count = min(len(older), PAGE_BACK)
    if count:
        back = account.messages(
            log.room_id, dir="b", limit=count, **{"from": window.prev_batch}
        )
        assert event_ids(back["chunk"]) == list(reversed(older))[:count], (
            f"/messages backwards from the prev_batch of {where} skips or "
            "repeats events"
        )
    return window


def check_every_window(
    account: Account, logs: list[RoomLog], tokens: list[Token]
) -> dict[tuple[str, str, int], Window]:
    """Check every room of `logs` from every token for every limit."""
    windows = {}
    for token in tokens:
        for log in logs:
            for limit in LIMITS:
                window = check_window(account, log, token, limit)
                windows[(token.since, log.room_id, limit)] = window
    return windows


def public_room_on_shard(owner: Account, shard: int, *members: Account) -> str:
    room_id = owner.create_room_on_shard(shard, preset="public_chat")
    for member in members:
        member.join(room_id)
    return room_id


# ---------------------------------------------------------------------------
# Bursts and limits


@pytest.mark.parametrize("room_shard", [0, 1])
@pytest.mark.parametrize("burst", BURSTS)
def test_burst_windows_match_store(hs, burst, room_shard):
    """A sender on shard 0, readers on both shards, and tokens on both sides
    of the tail's oldest event."""
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = public_room_on_shard(alice, room_shard, bob)
    log = RoomLog.of(alice, room_id)
    log.send(alice, "before the burst")

    # The token after event k of the burst leaves burst - k events.
    token_points = {0, 1, burst - 17, burst - 16, burst - 15, burst - 1, burst}
    tokens = {reader.user_id: [] for reader in (alice, bob)}
    for index in range(burst + 1):
        if index in token_points:
            for reader in (alice, bob):
                tokens[reader.user_id].append(take_token(reader, [log]))
        if index < burst:
            log.send(alice, f"burst {index}")

    for reader in (alice, bob):
        take_token(reader, [log])
        check_every_window(reader, [log], tokens[reader.user_id])


def test_interleaved_rooms_on_both_shards(hs):
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    logs = [
        RoomLog.of(alice, public_room_on_shard(alice, shard, bob))
        for shard in (0, 1, 0, 1)
    ]
    pattern = [(0, 5), (1, 17), (2, 3), (0, 12), (3, 16), (1, 3), (2, 20), (0, 1)]

    tokens = [take_token(bob, logs)]
    for step, (room, count) in enumerate(pattern):
        logs[room].burst(alice, f"step {step}", count)
        tokens.append(take_token(bob, logs))

    check_every_window(bob, logs, tokens)


def test_long_poll_tail_window(hs):
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    log = RoomLog.of(alice, public_room_on_shard(alice, 0, bob))
    log.burst(alice, "warm", 4)
    token = take_token(bob, [log])
    outcome: dict = {}

    def poll():
        try:
            outcome["body"] = bob.sync(
                since=token.since, timeout=15000, filter=quiet_filter([log.room_id], 10)
            )
        except Exception as error:  # re-raised in the test thread below
            outcome["error"] = error

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    sent = log.send(alice, "wake up")
    poller.join(timeout=30)

    assert not poller.is_alive(), "the long-poll did not return within 30 s"
    if "error" in outcome:
        raise outcome["error"]
    timeline = joined_room(outcome["body"], log.room_id)["timeline"]
    assert event_ids(timeline["events"]) == [sent]
    assert timeline.get("limited", False) is False


# ---------------------------------------------------------------------------
# Membership changes


@pytest.mark.parametrize("companion", [False, True])
def test_leave_and_rejoin(hs, companion):
    """Bob leaves and rejoins. With a companion on Bob's shard, that shard
    keeps receiving the room's events while Bob is away, so its tail does
    not restart at the rejoin."""
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    members = [bob]
    if companion:
        members.append(hs.register_on_shard("carol", 1))
    log = RoomLog.of(alice, public_room_on_shard(alice, 0, *members))
    log.burst(alice, "before", 3)
    joined_before = take_token(bob, [log])

    bob.leave(log.room_id)
    log.ids.append(bob_membership_id(alice, log.room_id, bob))
    log.burst(alice, "away", 5)
    bob.join(log.room_id)
    log.ids.append(bob_membership_id(alice, log.room_id, bob))
    rejoined = take_token(bob, [log])
    after = [rejoined]
    for count in (3, 14, 2):
        log.burst(alice, "after", count)
        after.append(take_token(bob, [log]))

    check_every_window(bob, [log], after)
    # The first window starts before the leave, so it is read with Bob's
    # view of the history. It must end with every event after the rejoin.
    since_rejoin = log.ids[rejoined.counts[log.room_id]:]
    window = read_window(bob, log.room_id, joined_before.since, 50)
    assert window.events[-len(since_rejoin):] == since_rejoin


def test_invite_then_join(hs):
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = alice.create_room_on_shard(1, preset="private_chat")
    log = RoomLog.of(alice, room_id)
    alice.invite(room_id, bob.user_id)
    log.ids.append(bob_membership_id(alice, room_id, bob))
    log.burst(alice, "while invited", 4)
    bob.join(room_id)
    log.ids.append(bob_membership_id(alice, room_id, bob))

    tokens = [take_token(bob, [log])]
    for count in (1, 15, 1, 16):
        log.burst(alice, "joined", count)
        tokens.append(take_token(bob, [log]))

    check_every_window(bob, [log], tokens)


def bob_membership_id(alice: Account, room_id: str, bob: Account) -> str:
    """Return the event ID of Bob's current membership event, as the newest event."""
    newest = event_ids(alice.messages(room_id, dir="b", limit=1)["chunk"])
    member = alice.get(f"rooms/{q(room_id)}/state")
    ids = {
        event["event_id"]
        for event in expect_ok(member)
        if event["type"] == "m.room.member" and event["state_key"] == bob.user_id
    }
    assert newest and newest[0] in ids, "Bob's membership is not the newest event"
    return newest[0]


# ---------------------------------------------------------------------------
# Admin purges and deletions


def purge(admin: Account, room_id: str, purge_up_to_ts: int) -> int:
    path = admin_path(f"rooms/{q(room_id)}/purge")
    return expect_ok(admin.post(path, {"purge_up_to_ts": purge_up_to_ts}))["purged_events"]


def test_purge_then_sync(hs):
    """A purge deletes events that the readers' tails hold, so the next
    incremental syncs must not count or return them."""
    admin = register_with_secret(hs, admin=True)
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    log = RoomLog.of(alice, public_room_on_shard(alice, 0, bob))
    before_old = take_token(bob, [log])
    old = log.burst(alice, "old", 5)
    after_old = take_token(bob, [log])
    time.sleep(PURGE_GAP)
    cutoff = alice.event(log.room_id, old[-1])["origin_server_ts"] + 1
    time.sleep(PURGE_GAP)
    new = log.burst(alice, "new", 3)
    after_new = take_token(bob, [log])

    assert purge(admin, log.room_id, cutoff) == len(old)
    log.ids = [event_id for event_id in log.ids if event_id not in old]

    # From a token before or among the purged events, only the new events
    # remain.
    for token in (before_old, after_old):
        for limit in (2, 3, 50):
            window = read_window(bob, log.room_id, token.since, limit)
            assert window.events == new[-limit:], (
                f"timeline since {token.since} with limit {limit} after the purge"
            )
            assert window.limited == (limit < len(new)), (
                f"limited is {window.limited} with limit {limit}: purged events "
                "still count"
            )
    # The counts of a token taken before the purge include the purged events.
    after_new.counts[log.room_id] -= len(old)
    later = log.burst(alice, "later", 2)
    tokens = [after_new, take_token(bob, [log])]
    last = log.burst(alice, "last", 1)
    check_every_window(bob, [log], tokens)
    window = read_window(bob, log.room_id, before_old.since, 50)
    assert window.events == new + later + last


def test_room_deletion_then_sync(hs):
    """Bob's incremental sync shows the deleted room as left, and his other
    room's windows are unaffected."""
    admin = register_with_secret(hs, admin=True)
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    doomed = RoomLog.of(alice, public_room_on_shard(alice, 0, bob))
    surviving = RoomLog.of(alice, public_room_on_shard(alice, 0, bob))
    doomed.burst(alice, "doomed", 6)
    surviving.burst(alice, "kept", 2)
    before = take_token(bob, [doomed, surviving])
    doomed.burst(alice, "doomed later", 3)
    surviving.burst(alice, "kept later", 3)
    before_delete = take_token(bob, [doomed, surviving])

    expect_ok(admin.delete(admin_path(f"rooms/{q(doomed.room_id)}")))
    surviving.burst(alice, "after delete", 2)
    after = take_token(bob, [surviving])

    body = bob.sync(since=before_delete.since, filter=quiet_filter([doomed.room_id], 50))
    assert doomed.room_id not in body.get("rooms", {}).get("join", {})
    assert doomed.room_id in body.get("rooms", {}).get("leave", {})
    left = body["rooms"]["leave"][doomed.room_id]["timeline"]["events"]
    assert not set(event_ids(left)) & set(doomed.ids), (
        "a deleted event is in the left room's timeline"
    )
    check_every_window(bob, [surviving], [before, before_delete, after])


# ---------------------------------------------------------------------------
# Restarts


def test_restart_between_syncs(start_server):
    """Windows read from the tails before a restart equal the same windows
    read from the store after it, and tails rebuilt after the restart start
    at the room's last stored event."""
    server = start_server()
    alice = server.register_on_shard("alice", 0)
    bob = server.register_on_shard("bob", 1)
    logs = [RoomLog.of(alice, public_room_on_shard(alice, shard, bob)) for shard in (0, 1)]
    tokens = [take_token(bob, logs)]
    for count in (3, 12, 1):
        for log in logs:
            log.burst(alice, "before restart", count)
        tokens.append(take_token(bob, logs))
    before = check_every_window(bob, logs, tokens)

    server.stop()
    server.start()

    after = check_every_window(bob, logs, tokens)
    assert after == before, "windows differ between the tails and the store"

    # The first windows after the restart reach back past the tails, which
    # start at the first event announced after it.
    for count in (2, 15):
        for log in logs:
            log.burst(alice, "after restart", count)
        tokens.append(take_token(bob, logs))
        check_every_window(bob, logs, tokens)


def test_reshard_restart_skips_nothing(start_server):
    """A token of a two-shard server read by a three-shard server may repeat
    events but must not skip one."""
    first = start_server(shards=2)
    alice = first.register_on_shard("alice", 0)
    bob = first.register_on_shard("bob", 1)
    log = RoomLog.of(alice, public_room_on_shard(alice, 0, bob))
    log.burst(alice, "before", 4)
    token = take_token(bob, [log])
    log.burst(alice, "between", 3)
    take_token(bob, [log])
    first.stop()

    second = start_server(shards=3, data_dir=first.data_dir)
    reader = second.account(bob.user_id, bob.access_token, bob.device_id, bob.password)
    writer = second.account(alice.user_id, alice.access_token, alice.device_id, alice.password)
    log.burst(writer, "after", 2)
    take_token(reader, [log])

    window = read_window(reader, log.room_id, token.since, 50)
    expected = log.ids[token.counts[log.room_id]:]
    assert window.events[-len(expected):] == expected
