"""Joining, inviting, leaving, kicking, banning, forgetting and member lists."""

import pytest

from harness import (
    assert_client_event,
    assert_error,
    expect_ok,
    message_bodies,
    q,
    unique,
)


# The spec's example for a forbidden join or invite is M_FORBIDDEN. Synapse 1.163
# returns M_BAD_STATE when the target is banned, which the spec's errcode list also allows.
BANNED_JOIN_ERRCODES = {"M_FORBIDDEN", "M_BAD_STATE"}


@pytest.fixture
def carol(hs):
    return hs.register_on_shard("carol", 0)


def member_event(account, room_id: str, user_id: str) -> dict:
    path = f"rooms/{q(room_id)}/state/m.room.member/{q(user_id)}"
    return expect_ok(account.get(path, params={"format": "event"}))


def test_join_by_alias(alice, bob):
    alias_name = unique("joinme")
    room_id = alice.create_room(preset="public_chat", room_alias_name=alias_name)
    assert bob.join(f"#{alias_name}:localhost") == room_id
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}


def test_join_by_room_id(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    assert bob.join(room_id) == room_id
    assert room_id in bob.joined_rooms()


def test_rooms_join_endpoint(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    body = expect_ok(bob.post(f"rooms/{q(room_id)}/join"))
    assert body["room_id"] == room_id
    assert bob.membership(room_id, bob.user_id) == "join"


def test_invite_then_join(alice, bob):
    room_id = alice.create_room(preset="private_chat")
    assert (
        expect_ok(alice.post(f"rooms/{q(room_id)}/invite", {"user_id": bob.user_id}))
        == {}
    )
    assert alice.membership(room_id, bob.user_id) == "invite"

    expect_ok(bob.post(f"rooms/{q(room_id)}/join"))
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}
    assert bob.joined_rooms() == {room_id}


def test_invite_by_non_member(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    resp = bob.post(f"rooms/{q(room_id)}/invite", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_invite_joined_member(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    resp = alice.post(f"rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.membership(room_id, bob.user_id) == "join"


def test_leave_rejects_invite(alice, bob):
    room_id = alice.create_room(preset="private_chat", invite=[bob.user_id])
    bob.leave(room_id)
    assert alice.membership(room_id, bob.user_id) == "leave"
    assert_error(bob.post(f"rooms/{q(room_id)}/join"), 403, "M_FORBIDDEN")


def test_leave_room(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    assert expect_ok(bob.post(f"rooms/{q(room_id)}/leave", {"reason": "bye"})) == {}

    assert room_id not in bob.joined_rooms()
    assert alice.joined_members(room_id) == {alice.user_id}
    event = member_event(alice, room_id, bob.user_id)
    assert event["content"]["membership"] == "leave"
    assert event["content"]["reason"] == "bye"
    assert event["sender"] == bob.user_id


def test_kick_member(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    body = {"user_id": bob.user_id, "reason": "too loud"}
    assert expect_ok(alice.post(f"rooms/{q(room_id)}/kick", body)) == {}

    event = member_event(alice, room_id, bob.user_id)
    assert event["content"]["membership"] == "leave"
    assert event["content"]["reason"] == "too loud"
    assert event["sender"] == alice.user_id
    assert room_id not in bob.joined_rooms()

    assert bob.join(room_id) == room_id, "a kicked user may rejoin a public room"


def test_member_cannot_kick(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    resp = bob.post(f"rooms/{q(room_id)}/kick", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.membership(room_id, carol.user_id) == "join"


def test_kick_power_can_be_granted(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    levels = alice.state_content(room_id, "m.room.power_levels")
    levels.setdefault("users", {})[bob.user_id] = levels.get("kick", 50)
    alice.set_state(room_id, "m.room.power_levels", "", levels)

    expect_ok(bob.post(f"rooms/{q(room_id)}/kick", {"user_id": carol.user_id}))
    assert alice.membership(room_id, carol.user_id) == "leave"


def test_ban_blocks_join(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    body = {"user_id": bob.user_id, "reason": "spam"}
    assert expect_ok(alice.post(f"rooms/{q(room_id)}/ban", body)) == {}

    event = member_event(alice, room_id, bob.user_id)
    assert event["content"]["membership"] == "ban"
    assert event["content"]["reason"] == "spam"
    assert_error(bob.post(f"join/{q(room_id)}"), 403, BANNED_JOIN_ERRCODES)
    invite = alice.post(f"rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
    assert_error(invite, 403, BANNED_JOIN_ERRCODES)


def test_ban_non_member(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    expect_ok(alice.post(f"rooms/{q(room_id)}/ban", {"user_id": bob.user_id}))
    assert alice.membership(room_id, bob.user_id) == "ban"
    assert_error(bob.post(f"join/{q(room_id)}"), 403, BANNED_JOIN_ERRCODES)


def test_member_cannot_ban(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    resp = bob.post(f"rooms/{q(room_id)}/ban", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.membership(room_id, carol.user_id) == "join"


def test_unban_allows_join(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    expect_ok(alice.post(f"rooms/{q(room_id)}/ban", {"user_id": bob.user_id}))
    assert (
        expect_ok(alice.post(f"rooms/{q(room_id)}/unban", {"user_id": bob.user_id}))
        == {}
    )

    assert alice.membership(room_id, bob.user_id) == "leave"
    assert bob.join(room_id) == room_id


def test_member_cannot_unban(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    expect_ok(alice.post(f"rooms/{q(room_id)}/ban", {"user_id": carol.user_id}))
    resp = bob.post(f"rooms/{q(room_id)}/unban", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.membership(room_id, carol.user_id) == "ban"


def test_forget_while_joined(alice):
    room_id = alice.create_room()
    assert_error(alice.post(f"rooms/{q(room_id)}/forget"), 400)
    assert alice.joined_rooms() == {room_id}


def test_forget_ends_history_access(alice, bob):
    """After forgetting a room a user can no longer retrieve its history."""
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    alice.send_message(room_id, "seen by bob")
    bob.leave(room_id)
    include_leave = {"room": {"include_leave": True, "timeline": {"limit": 10}}}
    before = bob.initial_sync_until(
        lambda body: room_id in body.get("rooms", {}).get("leave", {}),
        filter=include_leave,
    )
    assert room_id in before["rooms"]["leave"]
    history = bob.get(f"rooms/{q(room_id)}/messages", params={"dir": "b"})
    assert "seen by bob" in message_bodies(expect_ok(history)["chunk"])

    assert expect_ok(bob.post(f"rooms/{q(room_id)}/forget")) == {}
    after = bob.get(f"rooms/{q(room_id)}/messages", params={"dir": "b"})
    assert_error(after, {403, 404}, {"M_FORBIDDEN", "M_NOT_FOUND"})
    assert room_id not in bob.joined_rooms()


def test_joined_rooms_across_shards(alice, bob):
    rooms = {
        alice.create_room_on_shard(shard, preset="public_chat") for shard in (0, 1)
    }
    for room_id in rooms:
        bob.join(room_id)
    assert bob.joined_rooms() == rooms
    assert rooms <= alice.joined_rooms()


def test_joined_members_map(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    joined = expect_ok(alice.get(f"rooms/{q(room_id)}/joined_members"))["joined"]
    assert set(joined) == {alice.user_id, bob.user_id}
    for user_id, member in joined.items():
        assert isinstance(member, dict), f"member info for {user_id} is not an object"
        if "display_name" in member:
            assert isinstance(member["display_name"], str)


def test_joined_members_non_member(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    assert_error(bob.get(f"rooms/{q(room_id)}/joined_members"), 403, "M_FORBIDDEN")


def test_members_lists_member_events(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat", invite=[carol.user_id])
    bob.join(room_id)
    chunk = expect_ok(alice.get(f"rooms/{q(room_id)}/members"))["chunk"]
    for event in chunk:
        assert_client_event(event, room_id)
        assert event["type"] == "m.room.member"
    memberships = {
        event["state_key"]: event["content"]["membership"] for event in chunk
    }
    assert memberships == {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
    }


def test_members_membership_filter(alice, bob, carol):
    room_id = alice.create_room(preset="public_chat", invite=[carol.user_id])
    bob.join(room_id)
    path = f"rooms/{q(room_id)}/members"

    joined = expect_ok(alice.get(path, params={"membership": "join"}))["chunk"]
    assert {event["state_key"] for event in joined} == {alice.user_id, bob.user_id}

    not_joined = expect_ok(alice.get(path, params={"not_membership": "join"}))["chunk"]
    assert {event["state_key"] for event in not_joined} == {carol.user_id}


def test_members_after_leaving(alice, bob, carol):
    """A user who left gets the member list as it was when they left."""
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    bob.leave(room_id)
    carol.join(room_id)

    chunk = expect_ok(bob.get(f"rooms/{q(room_id)}/members"))["chunk"]
    memberships = {
        event["state_key"]: event["content"]["membership"] for event in chunk
    }
    assert memberships == {alice.user_id: "join", bob.user_id: "leave"}


def test_members_never_joined(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    assert_error(bob.get(f"rooms/{q(room_id)}/members"), 403, "M_FORBIDDEN")


def test_leave_appears_in_sync(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    include_leave = {"room": {"include_leave": True, "timeline": {"limit": 50}}}
    since = bob.sync(filter=include_leave)["next_batch"]
    bob.leave(room_id)

    responses = bob.sync_until(
        lambda body: room_id in body.get("rooms", {}).get("leave", {}),
        since=since,
        filter=include_leave,
    )
    timeline = responses[-1]["rooms"]["leave"][room_id]["timeline"]["events"]
    leaves = [
        e
        for e in timeline
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert leaves, "the leave event is missing from the left room's timeline"
    assert leaves[-1]["content"]["membership"] == "leave"
