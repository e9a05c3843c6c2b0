"""GET /sync: initial and incremental syncs, long-polling, filters and room sections."""

import threading
import time

import pytest

from harness import (
    WIDE_TIMELINE,
    assert_error,
    event_ids,
    expect_ok,
    joined_room,
    joined_state,
    joined_timeline,
    message_bodies,
    q,
    shows_event,
)

# Keeps presence and account data out of a sync, so only room events can wake a long-poll.
QUIET = {
    "room": {"timeline": {"limit": 50}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}


@pytest.fixture
def room(alice, bob):
    room_id = alice.create_room(
        preset="public_chat", name="Sync room", topic="first topic"
    )
    bob.join(room_id)
    return room_id


def in_section(section: str, room_id: str):
    return lambda body: room_id in body.get("rooms", {}).get(section, {})


def send_messages(account, room_id: str, prefix: str, count: int) -> list[str]:
    return [account.send_message(room_id, f"{prefix}{index}") for index in range(count)]


def assert_subset(expected, actual, path="filter"):
    """Assert that every key in `expected` is in `actual` with an equal value."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path} is {actual!r}, expected an object"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing"
            assert_subset(value, actual[key], f"{path}.{key}")
    else:
        assert actual == expected, f"{path} is {actual!r}, expected {expected!r}"


def test_initial_sync_shape(alice, room):
    last = alice.send_message(room, "hello")
    body = alice.initial_sync_until(shows_event(room, last), filter=WIDE_TIMELINE)
    assert isinstance(body["next_batch"], str)
    timeline = joined_timeline(body, room)
    for event in timeline:
        for key in ("event_id", "type", "sender", "origin_server_ts", "content"):
            assert key in event, f"timeline event without {key}: {event}"
    assert timeline[-1]["event_id"] == last
    assert timeline[-1]["content"]["body"] == "hello"


def test_incremental_sync_new_events_only(alice, bob, room):
    since = alice.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    sent = send_messages(bob, room, "inc", 3)

    events, _ = alice.sync_timeline(room, since, sent[-1])
    assert event_ids(events) == sent
    assert message_bodies(events) == ["inc0", "inc1", "inc2"]


def test_since_is_replayable(alice, bob, room):
    """Syncing twice from one token returns the same events, so a client can retry."""
    since = alice.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    sent = send_messages(bob, room, "again", 2)
    alice.initial_sync_until(shows_event(room, sent[-1]))

    first = alice.sync(since=since, filter=WIDE_TIMELINE)
    second = alice.sync(since=since, filter=WIDE_TIMELINE)
    assert event_ids(joined_timeline(first, room)) == sent
    assert event_ids(joined_timeline(second, room)) == sent


def test_sync_at_head_is_empty(alice, room):
    last = alice.send_message(room, "head")
    since = alice.initial_sync_until(shows_event(room, last), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    body = alice.sync(since=since, timeout=0, filter=WIDE_TIMELINE)
    assert joined_timeline(body, room) == []


def test_long_poll_wakes_on_other_shard(alice, bob, room):
    """A long-poll on bob's shard returns as soon as alice, on the other shard, sends."""
    since = bob.initial_sync_until(in_section("join", room), filter=QUIET)["next_batch"]
    outcome: dict = {}

    def poll():
        try:
            outcome["body"] = bob.sync(
                since=since, timeout=15000, filter=QUIET, set_presence="offline"
            )
        except Exception as err:  # re-raised in the test thread below
            outcome["error"] = err
        outcome["returned_at"] = time.monotonic()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    event_id = alice.send_message(room, "wake up")
    poller.join(timeout=30)

    assert not poller.is_alive(), "the long-poll did not return within 30 s"
    if "error" in outcome:
        raise outcome["error"]
    assert event_id in event_ids(joined_timeline(outcome["body"], room))
    assert outcome["returned_at"] - sent_at < 5, (
        "the long-poll returned more than 5 s after the send"
    )


def test_long_poll_waits_when_idle(hs):
    loner = hs.register_on_shard("loner", 1)
    since = loner.sync(filter=QUIET, set_presence="offline")["next_batch"]
    started = time.monotonic()
    body = loner.sync(since=since, timeout=1500, filter=QUIET, set_presence="offline")
    elapsed = time.monotonic() - started
    assert elapsed >= 1.2, (
        f"an idle long-poll returned after {elapsed:.2f} s, before its timeout"
    )
    assert elapsed < 10, f"an idle long-poll took {elapsed:.2f} s for a 1.5 s timeout"
    assert body.get("rooms", {}).get("join", {}) == {}


def test_timeline_limit_sets_limited(alice, bob, room):
    sent = send_messages(bob, room, "lim", 10)
    limited = {"room": {"timeline": {"limit": 3}}}
    body = alice.initial_sync_until(shows_event(room, sent[-1]), filter=limited)

    timeline = joined_room(body, room)["timeline"]
    assert event_ids(timeline["events"]) == sent[-3:]
    assert timeline["limited"] is True
    assert isinstance(timeline["prev_batch"], str)

    page = alice.messages(room, dir="b", limit=3, **{"from": timeline["prev_batch"]})
    assert event_ids(page["chunk"]) == list(reversed(sent[-6:-3]))


def test_incremental_limited_gap(alice, bob, room):
    since = alice.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    sent = send_messages(bob, room, "gap", 8)
    alice.initial_sync_until(shows_event(room, sent[-1]))

    body = alice.sync(since=since, filter={"room": {"timeline": {"limit": 3}}})
    timeline = joined_room(body, room)["timeline"]
    assert event_ids(timeline["events"]) == sent[-3:]
    assert timeline["limited"] is True

    older = alice.messages(room, dir="b", limit=5, **{"from": timeline["prev_batch"]})
    assert event_ids(older["chunk"]) == list(reversed(sent[:5]))


def test_incremental_not_limited(alice, bob, room):
    since = alice.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    sent = send_messages(bob, room, "few", 2)
    alice.initial_sync_until(shows_event(room, sent[-1]))

    body = alice.sync(since=since, filter={"room": {"timeline": {"limit": 10}}})
    timeline = joined_room(body, room)["timeline"]
    assert event_ids(timeline["events"]) == sent
    assert timeline.get("limited", False) is False


def test_state_block_before_timeline(alice, bob, room):
    """With a short timeline, the room state before it arrives in the state block."""
    sent = send_messages(bob, room, "state", 4)
    body = alice.initial_sync_until(
        shows_event(room, sent[-1]), filter={"room": {"timeline": {"limit": 2}}}
    )

    state = joined_state(body, room)
    keys = {(event["type"], event["state_key"]) for event in state}
    for expected in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", alice.user_id),
        ("m.room.member", bob.user_id),
    ]:
        assert expected in keys, f"{expected} missing from the state block"
    timeline_ids = set(event_ids(joined_timeline(body, room)))
    assert timeline_ids == set(sent[-2:])
    assert not timeline_ids & set(event_ids(state)), (
        "an event is in both state and timeline"
    )


def test_gap_state_in_state_block(alice, bob, room):
    """A state change hidden in a limited gap is reported in the state block."""
    since = bob.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    topic_id = alice.set_state(
        room, "m.room.topic", "", {"topic": "changed in the gap"}
    )
    sent = send_messages(alice, room, "after", 5)
    bob.initial_sync_until(shows_event(room, sent[-1]))

    body = bob.sync(since=since, filter={"room": {"timeline": {"limit": 2}}})
    assert joined_room(body, room)["timeline"]["limited"] is True
    topics = [
        event for event in joined_state(body, room) if event["type"] == "m.room.topic"
    ]
    assert event_ids(topics) == [topic_id]
    assert topics[0]["content"]["topic"] == "changed in the gap"


def test_full_state_with_since(alice, room):
    since = alice.initial_sync_until(in_section("join", room), filter=WIDE_TIMELINE)[
        "next_batch"
    ]
    body = alice.sync(since=since, full_state="true", filter=WIDE_TIMELINE)
    keys = {(event["type"], event["state_key"]) for event in joined_state(body, room)}
    assert ("m.room.create", "") in keys
    assert ("m.room.name", "") in keys


def test_set_presence_offline(alice):
    body = alice.sync(set_presence="offline")
    assert isinstance(body["next_batch"], str)
    since = body["next_batch"]
    again = alice.sync(since=since, set_presence="offline", timeout=0)
    assert isinstance(again["next_batch"], str)


def test_invite_in_sync(alice, bob):
    since = bob.sync(filter=WIDE_TIMELINE)["next_batch"]
    room_id = alice.create_room(preset="private_chat", name="Invite room")
    alice.invite(room_id, bob.user_id)

    responses = bob.sync_until(in_section("invite", room_id), since=since)
    stripped = responses[-1]["rooms"]["invite"][room_id]["invite_state"]["events"]
    by_type = {(event["type"], event.get("state_key")): event for event in stripped}
    assert ("m.room.create", "") in by_type, "invite_state must contain m.room.create"
    assert by_type[("m.room.name", "")]["content"] == {"name": "Invite room"}
    invite = by_type[("m.room.member", bob.user_id)]
    assert invite["content"]["membership"] == "invite"
    assert invite["sender"] == alice.user_id


def test_join_moves_room_to_join(alice, bob):
    room_id = alice.create_room(preset="private_chat", invite=[bob.user_id])
    since = bob.sync_until(in_section("invite", room_id))[-1]["next_batch"]
    bob.join(room_id)

    responses = bob.sync_until(
        in_section("join", room_id), since=since, filter=WIDE_TIMELINE
    )
    timeline = joined_timeline(responses[-1], room_id)
    joins = [
        e
        for e in timeline
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert joins and joins[-1]["content"]["membership"] == "join"
    assert room_id not in responses[-1].get("rooms", {}).get("invite", {})


def test_kick_moves_room_to_leave(alice, bob, room):
    include_leave = {"room": {"include_leave": True, "timeline": {"limit": 50}}}
    since = bob.initial_sync_until(in_section("join", room), filter=include_leave)[
        "next_batch"
    ]
    expect_ok(
        alice.post(f"rooms/{q(room)}/kick", {"user_id": bob.user_id, "reason": "bye"})
    )

    responses = bob.sync_until(
        in_section("leave", room), since=since, filter=include_leave
    )
    timeline = responses[-1]["rooms"]["leave"][room]["timeline"]["events"]
    kick = [
        e
        for e in timeline
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert kick, "the kick is missing from the left room's timeline"
    assert kick[-1]["content"]["membership"] == "leave"
    assert kick[-1]["sender"] == alice.user_id


def test_events_from_rooms_on_both_shards(alice, bob):
    rooms = [
        alice.create_room_on_shard(shard, preset="public_chat") for shard in (0, 1)
    ]
    for room_id in rooms:
        bob.join(room_id)
    joined_both = bob.initial_sync_until(
        lambda body: all(in_section("join", room_id)(body) for room_id in rooms)
    )
    since = joined_both["next_batch"]
    sent: dict[str, list[str]] = {room_id: [] for room_id in rooms}
    for index in range(6):
        room_id = rooms[index % 2]
        sent[room_id].append(alice.send_message(room_id, f"both{index}"))

    seen: dict[str, list[str]] = {room_id: [] for room_id in rooms}

    def collect(body: dict) -> bool:
        for room_id in rooms:
            seen[room_id].extend(event_ids(joined_timeline(body, room_id)))
        return all(seen[room_id][-1:] == sent[room_id][-1:] for room_id in rooms)

    bob.sync_until(collect, since=since, filter=WIDE_TIMELINE)
    for room_id in rooms:
        assert seen[room_id] == sent[room_id], (
            f"events of {room_id} lost, repeated or reordered"
        )


def test_filter_upload_and_get(alice):
    uploaded = {
        "room": {
            "timeline": {"limit": 1, "types": ["m.room.message"]},
            "state": {"types": ["m.room.name"]},
        },
        "presence": {"not_types": ["*"]},
    }
    filter_id = expect_ok(alice.post(f"user/{q(alice.user_id)}/filter", uploaded))[
        "filter_id"
    ]
    assert isinstance(filter_id, str) and filter_id
    assert not filter_id.startswith("{")

    stored = expect_ok(alice.get(f"user/{q(alice.user_id)}/filter/{q(filter_id)}"))
    assert_subset(uploaded, stored)


def test_filter_unknown_id(alice):
    resp = alice.get(f"user/{q(alice.user_id)}/filter/987654321")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_sync_with_filter_id(alice, bob, room):
    sent = send_messages(bob, room, "byid", 3)
    uploaded = {"room": {"timeline": {"limit": 1}}}
    filter_id = expect_ok(alice.post(f"user/{q(alice.user_id)}/filter", uploaded))[
        "filter_id"
    ]

    body = alice.initial_sync_until(shows_event(room, sent[-1]), filter=filter_id)
    assert event_ids(joined_timeline(body, room)) == [sent[-1]]
    assert joined_room(body, room)["timeline"]["limited"] is True


def test_sync_with_inline_filter(alice, bob, room):
    sent = send_messages(bob, room, "inline", 3)
    body = alice.initial_sync_until(
        shows_event(room, sent[-1]), filter={"room": {"timeline": {"limit": 2}}}
    )
    assert event_ids(joined_timeline(body, room)) == sent[-2:]


def test_filter_restricts_rooms(alice, room):
    other = alice.create_room(name="Other")
    last = alice.send_message(room, "only this room")
    only_room = {"room": {"rooms": [room], "timeline": {"limit": 5}}}
    body = alice.initial_sync_until(shows_event(room, last), filter=only_room)
    assert other not in body["rooms"]["join"]


def test_filter_timeline_types(alice, bob, room):
    ping = bob.send_event(room, "org.example.ping", {"n": 1})
    last = bob.send_message(room, "after ping")
    only_pings = {"room": {"timeline": {"types": ["org.example.ping"], "limit": 10}}}
    alice.initial_sync_until(shows_event(room, last))
    body = alice.sync(filter=only_pings)
    assert event_ids(joined_timeline(body, room)) == [ping]


def test_timeline_limit_counts_matching_events(alice, bob, room):
    """The limit applies to the events that pass the filter, not to the rows
    read before filtering."""
    messages = send_messages(bob, room, "counted", 3)
    ping = bob.send_event(room, "org.example.ping", {"n": 2})
    alice.initial_sync_until(shows_event(room, ping))
    two_messages = {"room": {"timeline": {"types": ["m.room.message"], "limit": 2}}}
    timeline = joined_room(alice.sync(filter=two_messages), room)["timeline"]
    assert event_ids(timeline["events"]) == messages[-2:]
    assert timeline["limited"] is True

    since = alice.sync(filter=two_messages)["next_batch"]
    later = send_messages(bob, room, "later", 2)
    pings = [bob.send_event(room, "org.example.ping", {"n": n}) for n in range(5)]
    alice.initial_sync_until(shows_event(room, pings[-1]))
    timeline = joined_room(alice.sync(since=since, filter=two_messages), room)["timeline"]
    assert event_ids(timeline["events"]) == later
    assert timeline["limited"] is False


def test_federation_event_format(alice, room):
    """The federation format carries the PDU's hashes and the origin's signatures."""
    last = alice.send_message(room, "signed")
    federation = {"event_format": "federation", "room": {"timeline": {"limit": 5}}}
    alice.initial_sync_until(shows_event(room, last))
    body = alice.sync(filter=federation)
    pdus = [
        e
        for e in joined_timeline(body, room)
        if e.get("content", {}).get("body") == "signed"
    ]
    assert len(pdus) == 1, (
        "the sent message is missing from a federation-format timeline"
    )
    pdu = pdus[0]
    assert isinstance(pdu["hashes"]["sha256"], str)
    signatures = pdu["signatures"]["localhost"]
    assert signatures, "the PDU has no signature from localhost"
    assert all(key.startswith("ed25519:") for key in signatures)
    assert isinstance(pdu["prev_events"], list)
    assert isinstance(pdu["auth_events"], list)


@pytest.mark.parametrize("burst", [1, 12, 16, 20])
def test_incremental_window_after_a_burst(hs, burst):
    """One incremental sync over a burst returns its newest events, in order.

    Bursts of up to 16 events are read from the room's tail in memory, and
    longer ones from the store. Both give the same window and `limited`.
    """
    alice = hs.register_on_shard(f"burst{burst}-alice", 0)
    bob = hs.register_on_shard(f"burst{burst}-bob", 1)
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    narrow = {"room": {"timeline": {"limit": 15}}}
    before = alice.send_message(room_id, "before")
    since = bob.initial_sync_until(shows_event(room_id, before), filter=narrow)[
        "next_batch"
    ]
    sent = send_messages(alice, room_id, "burst", burst)
    # Wait until the whole burst has reached Bob's shard, then read it in
    # one response.
    bob.initial_sync_until(shows_event(room_id, sent[-1]), filter=narrow)
    body = bob.sync(since=since, filter=narrow)
    timeline = joined_room(body, room_id)["timeline"]
    assert event_ids(timeline["events"]) == sent[-15:]
    assert timeline["limited"] == (burst > 15)


def test_summary_counts_and_heroes(hs):
    alice = hs.register_on_shard("summary-alice", 0)
    bob = hs.register_on_shard("summary-bob", 1)
    room_id = alice.create_room(invite=[bob.user_id])
    body = alice.sync()
    summary = body["rooms"]["join"][room_id]["summary"]
    assert summary["m.joined_member_count"] == 1
    assert summary["m.invited_member_count"] == 1
    assert summary["m.heroes"] == [bob.user_id], "an unnamed room lists its other members"

    named = alice.create_room(name="Named room")
    named_summary = alice.sync()["rooms"]["join"][named]["summary"]
    assert named_summary["m.joined_member_count"] == 1
    assert "m.heroes" not in named_summary, "a named room needs no heroes"
