"""GET /rooms/{roomId}/messages: direction, tokens, limits and filters."""

from dataclasses import dataclass

import pytest

from harness import (
    WIDE_TIMELINE,
    Account,
    assert_client_event,
    assert_error,
    event_ids,
    expect_ok,
    message_bodies,
    q,
    shows_event,
)

MESSAGE_COUNT = 10
PINGS_AFTER = {2: "p0", 5: "p1", 8: "p2"}


@dataclass
class History:
    alice: Account
    bob: Account
    room_id: str
    # Every event the fixture sent, oldest first, as (body, event_id).
    sent: list[tuple[str, str]]
    # A /sync next_batch token taken after m4 and before m5.
    token_after_m4: str

    def ids_of(self, bodies: list[str]) -> list[str]:
        by_body = dict(self.sent)
        return [by_body[body] for body in bodies]


@pytest.fixture(scope="module")
def history(hs) -> History:
    """A room with m0..m9 sent alternately by alice and bob, and pings p0..p2 by alice."""
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)

    sent: list[tuple[str, str]] = []
    token = None
    for index in range(MESSAGE_COUNT):
        sender = alice if index % 2 == 0 else bob
        body = f"m{index}"
        sent.append((body, sender.send_message(room_id, body)))
        if index in PINGS_AFTER:
            ping = PINGS_AFTER[index]
            sent.append(
                (ping, alice.send_event(room_id, "org.example.ping", {"body": ping}))
            )
        if index == 4:
            token = alice.initial_sync_until(shows_event(room_id, sent[-1][1]))[
                "next_batch"
            ]
    return History(alice, bob, room_id, sent, token)


MESSAGES = [f"m{index}" for index in range(MESSAGE_COUNT)]


def test_backwards_from_latest(history):
    page = history.bob.messages(history.room_id, dir="b", limit=4)
    assert event_ids(page["chunk"]) == history.ids_of(["m9", "p2", "m8", "m7"])
    assert isinstance(page["start"], str)
    assert isinstance(page["end"], str)
    for event in page["chunk"]:
        assert_client_event(event, history.room_id)


def test_forwards_from_first(history):
    page = history.bob.messages(history.room_id, dir="f", limit=3)
    assert page["chunk"][0]["type"] == "m.room.create"
    assert page["chunk"][1]["type"] == "m.room.member"
    assert page["chunk"][1]["state_key"] == history.alice.user_id


def test_limit_respected(history):
    for limit in (1, 3, 7):
        page = history.bob.messages(history.room_id, dir="b", limit=limit)
        assert len(page["chunk"]) == limit


def test_end_token_continues(history):
    first = history.bob.messages(history.room_id, dir="b", limit=4)
    second = history.bob.messages(
        history.room_id, dir="b", limit=4, **{"from": first["end"]}
    )
    assert event_ids(second["chunk"]) == history.ids_of(["m6", "p1", "m5", "m4"])
    assert second["start"] == first["end"]


def test_paginate_back_to_create(history):
    events = history.bob.paginate(history.room_id, "b", limit=3)
    assert message_bodies(events) == list(reversed(MESSAGES))
    assert events[-1]["type"] == "m.room.create"
    assert len(set(event_ids(events))) == len(events), (
        "backward pagination repeated an event"
    )


def test_paginate_forward_matches_backward(history):
    backward = history.bob.paginate(history.room_id, "b", limit=4)
    forward = history.bob.paginate(history.room_id, "f", limit=4)
    assert event_ids(forward) == list(reversed(event_ids(backward)))
    assert message_bodies(forward) == MESSAGES


def test_forwards_from_sync_token(history):
    page = history.bob.messages(
        history.room_id, dir="f", limit=50, **{"from": history.token_after_m4}
    )
    assert message_bodies(page["chunk"]) == ["m5", "m6", "m7", "m8", "m9"]
    assert page["start"] == history.token_after_m4


def test_backwards_to_sync_token(history):
    last_id = history.sent[-1][1]
    synced = history.alice.sync_until(
        shows_event(history.room_id, last_id),
        since=history.token_after_m4,
        filter=WIDE_TIMELINE,
    )
    latest = synced[-1]["next_batch"]
    params = {"from": latest, "to": history.token_after_m4}
    page = history.bob.messages(history.room_id, dir="b", limit=50, **params)
    assert message_bodies(page["chunk"]) == ["m9", "m8", "m7", "m6", "m5"]


def test_filter_types(history):
    page = history.bob.messages(
        history.room_id, dir="b", limit=50, filter={"types": ["org.example.ping"]}
    )
    assert event_ids(page["chunk"]) == history.ids_of(["p2", "p1", "p0"])


def test_filter_types_wildcard(history):
    page = history.bob.messages(
        history.room_id, dir="f", limit=50, filter={"types": ["org.example.*"]}
    )
    assert event_ids(page["chunk"]) == history.ids_of(["p0", "p1", "p2"])


def test_filter_not_types(history):
    page = history.bob.messages(
        history.room_id, dir="b", limit=50, filter={"not_types": ["m.room.message"]}
    )
    types = {event["type"] for event in page["chunk"]}
    assert "m.room.message" not in types
    assert "org.example.ping" in types
    assert "m.room.create" in types


def test_filter_not_types_beats_types(history):
    event_filter = {
        "types": ["org.example.ping", "m.room.message"],
        "not_types": ["org.example.*"],
    }
    page = history.bob.messages(history.room_id, dir="b", limit=50, filter=event_filter)
    assert message_bodies(page["chunk"]) == list(reversed(MESSAGES))
    assert {event["type"] for event in page["chunk"]} == {"m.room.message"}


def test_filter_senders(history):
    page = history.alice.messages(
        history.room_id,
        dir="f",
        limit=50,
        filter={"types": ["m.room.message"], "senders": [history.bob.user_id]},
    )
    assert message_bodies(page["chunk"]) == ["m1", "m3", "m5", "m7", "m9"]


def test_messages_non_member(hs, history):
    outsider = hs.register_on_shard("outsider", 0)
    resp = outsider.get(f"rooms/{q(history.room_id)}/messages", params={"dir": "b"})
    assert_error(resp, 403, "M_FORBIDDEN")


def forget_forced(account: Account) -> bool:
    capabilities = expect_ok(account.get("capabilities"))["capabilities"]
    return capabilities.get("m.forget_forced_upon_leave", {}).get("enabled", False)


def test_history_stops_at_leave(hs):
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    alice.send_message(room_id, "while joined")
    bob.leave(room_id)
    alice.send_message(room_id, "after leaving")

    resp = bob.get(f"rooms/{q(room_id)}/messages", params={"dir": "b", "limit": 50})
    if forget_forced(bob):
        assert_error(resp, 403, "M_FORBIDDEN")
        return
    bodies = message_bodies(expect_ok(resp)["chunk"])
    assert "while joined" in bodies
    assert "after leaving" not in bodies


@pytest.mark.parametrize(
    ("visibility", "sees_earlier"), [("shared", True), ("joined", False)]
)
def test_history_visibility_for_late_joiner(hs, visibility, sees_earlier):
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    room_id = alice.create_room(
        preset="public_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": visibility},
            }
        ],
    )
    alice.send_message(room_id, "before bob")
    bob.join(room_id)
    alice.send_message(room_id, "after bob")

    bodies = message_bodies(bob.paginate(room_id, "b", limit=50))
    assert "after bob" in bodies
    assert ("before bob" in bodies) is sees_earlier
