"""The admin API's room endpoints: listing, details, deletion and history purges."""

from __future__ import annotations

import time

import pytest

from harness import (
    assert_error,
    event_ids,
    expect_ok,
    message_bodies,
    q,
    shard_of,
    unique,
)

# `hs` is the module-scoped server fixture with shared-secret registration.
from test_admin import (  # noqa: F401
    SECRET_ARGS,
    admin_path,
    hs,
    list_all,
    register_with_secret,
)


@pytest.fixture
def admin(hs):
    return register_with_secret(hs, admin=True)


@pytest.fixture
def carol(hs):
    return hs.register_on_shard("carol", 0)


def state_ids(account, room_id: str) -> set[str]:
    return set(event_ids(expect_ok(account.get(f"rooms/{q(room_id)}/state"))))


def all_messages(account, room_id: str) -> list[str]:
    """Return every message body in the room, newest first."""
    return message_bodies(account.paginate(room_id, "b", limit=50))


def origin_ts(account, room_id: str, event_id: str) -> int:
    return account.event(room_id, event_id)["origin_server_ts"]


def purge(admin, room_id: str, purge_up_to_ts: int) -> dict:
    path = admin_path(f"rooms/{q(room_id)}/purge")
    return expect_ok(admin.post(path, {"purge_up_to_ts": purge_up_to_ts}))


# ---------------------------------------------------------------------------
# Listing and details


def test_list_rooms_fields(admin, alice, bob):
    name = unique("Listed room")
    room_id = alice.create_room(preset="public_chat", name=name)
    bob.join(room_id)

    rooms = {room["room_id"]: room for room in list_all(admin, "rooms", 1000)}
    assert room_id in rooms, f"{room_id} missing from the room list"
    assert rooms[room_id] == {
        "room_id": room_id,
        "name": name,
        "joined_members": 2,
        "version": "12",
        "creator": alice.user_id,
    }


def test_list_rooms_unnamed_room(admin, alice):
    room_id = alice.create_room()
    rooms = {room["room_id"]: room for room in list_all(admin, "rooms", 1000)}
    assert rooms[room_id]["name"] is None
    assert rooms[room_id]["joined_members"] == 1


def test_list_rooms_pages(admin, alice):
    for _ in range(3):
        alice.create_room()
    whole = expect_ok(admin.get(admin_path("rooms"), params={"limit": 1000}))
    assert whole["total"] == len(whole["rooms"])
    assert "next_offset" not in whole
    ids = [room["room_id"] for room in whole["rooms"]]
    assert ids == sorted(ids)

    assert list_all(admin, "rooms", 2) == whole["rooms"]
    first = expect_ok(admin.get(admin_path("rooms"), params={"limit": 1}))
    assert first["next_offset"] == 1
    assert first["rooms"] == whole["rooms"][:1]


def test_get_room(hs, admin, alice, bob):
    name = unique("Detailed room")
    room_id = alice.create_room(preset="public_chat", name=name)
    bob.join(room_id)

    body = expect_ok(admin.get(admin_path(f"rooms/{q(room_id)}")))
    assert body["room_id"] == room_id
    assert body["name"] == name
    assert body["version"] == "12"
    assert body["creator"] == alice.user_id
    assert body["joined_members"] == 2
    assert body["members"] == sorted([alice.user_id, bob.user_id])
    assert body["state_events"] == len(state_ids(alice, room_id))
    assert body["shard"] == shard_of(room_id, hs.shards)
    assert body["created_at"].endswith("Z")


def test_get_room_counts_only_joined_members(admin, alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    bob.leave(room_id)
    alice.invite(room_id, carol.user_id)
    body = expect_ok(admin.get(admin_path(f"rooms/{q(room_id)}")))
    assert body["members"] == [alice.user_id]
    assert body["joined_members"] == 1


def test_get_room_unknown(admin):
    resp = admin.get(admin_path(f"rooms/{q('!unknown:localhost')}"))
    assert_error(resp, 404, "M_NOT_FOUND")


def test_get_room_invalid_id(admin):
    assert_error(admin.get(admin_path("rooms/not-a-room")), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# Deletion


def test_delete_room_removes_every_member(admin, alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    alice.invite(room_id, carol.user_id)
    alice.send_message(room_id, "before the deletion")

    body = expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))
    assert sorted(body["kicked_users"]) == sorted(
        [alice.user_id, bob.user_id, carol.user_id]
    )
    assert body["blocked"] is True
    assert body["purged"] is True
    assert body["purged_events"] > 0

    assert room_id not in alice.joined_rooms()
    assert room_id not in bob.joined_rooms()


def test_deleted_room_cannot_be_joined(admin, alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    alice.invite(room_id, carol.user_id)
    expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert_error(bob.post(f"rooms/{q(room_id)}/join"), 403, "M_FORBIDDEN")
    assert_error(carol.post(f"rooms/{q(room_id)}/join"), 403, "M_FORBIDDEN")
    assert_error(alice.post(f"rooms/{q(room_id)}/join"), 403, "M_FORBIDDEN")


def test_deleted_room_events_unreadable(admin, alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    event_id = alice.send_message(room_id, "soon gone")
    # Read the event first, so that the room's shard caches it.
    assert alice.event(room_id, event_id)["content"]["body"] == "soon gone"
    expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))

    for account in (alice, bob):
        resp = account.get(f"rooms/{q(room_id)}/event/{q(event_id)}")
        assert_error(resp, {403, 404})
        resp = account.get(f"rooms/{q(room_id)}/messages", params={"dir": "b"})
        assert_error(resp, 403, "M_FORBIDDEN")
        assert_error(account.get(f"rooms/{q(room_id)}/state"), 403, "M_FORBIDDEN")


def test_deleted_room_leaves_admin_views(admin, alice):
    room_id = alice.create_room(name="doomed")
    expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))
    assert_error(admin.get(admin_path(f"rooms/{q(room_id)}")), 404, "M_NOT_FOUND")
    listed = [room["room_id"] for room in list_all(admin, "rooms", 1000)]
    assert room_id not in listed
    assert_error(admin.delete(admin_path(f"rooms/{q(room_id)}")), 404, "M_NOT_FOUND")


def test_deleted_room_aliases_removed(hs, admin, alice, bob):
    alias_name = unique("deleted-alias")
    alias = f"#{alias_name}:localhost"
    room_id = alice.create_room(preset="public_chat", room_alias_name=alias_name)
    expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))

    assert_error(hs.get(f"directory/room/{q(alias)}"), 404, "M_NOT_FOUND")
    assert_error(bob.post(f"join/{q(alias)}"), 404, "M_NOT_FOUND")
    # The alias is free for another room.
    other = alice.create_room(room_alias_name=alias_name)
    assert expect_ok(hs.get(f"directory/room/{q(alias)}"))["room_id"] == other


def test_deleted_room_shows_as_left_in_sync(admin, alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    since = bob.sync()["next_batch"]
    expect_ok(admin.delete(admin_path(f"rooms/{q(room_id)}")))

    responses = bob.sync_until(
        lambda body: room_id in body.get("rooms", {}).get("leave", {}), since=since
    )
    assert room_id not in responses[-1].get("rooms", {}).get("join", {})


def test_delete_unknown_room(admin):
    resp = admin.delete(admin_path(f"rooms/{q('!unknown:localhost')}"))
    assert_error(resp, 404, "M_NOT_FOUND")


def test_delete_room_invalid_id(admin):
    assert_error(admin.delete(admin_path("rooms/nope")), 400, "M_INVALID_PARAM")


def test_other_rooms_survive_deletion(admin, alice, bob):
    doomed = alice.create_room(preset="public_chat")
    kept = alice.create_room(preset="public_chat")
    bob.join(doomed)
    bob.join(kept)
    alice.send_message(kept, "still here")
    expect_ok(admin.delete(admin_path(f"rooms/{q(doomed)}")))

    assert bob.joined_members(kept) == {alice.user_id, bob.user_id}
    assert all_messages(bob, kept) == ["still here"]


# ---------------------------------------------------------------------------
# History purges


def send_old_and_new(account, room_id: str, old: list[str], new: list[str]) -> int:
    """Send `old`, then `new` messages; return a purge_up_to_ts between the two groups."""
    last_old = None
    for body in old:
        last_old = account.send_message(room_id, body)
    cutoff = origin_ts(account, room_id, last_old) + 1
    # Let the clock pass the cutoff so every new message is at or after it.
    time.sleep(0.05)
    for body in new:
        account.send_message(room_id, body)
    return cutoff


def test_purge_removes_old_messages(admin, alice, bob):
    room_id = alice.create_room(preset="public_chat", name="first name")
    bob.join(room_id)
    cutoff = send_old_and_new(
        alice, room_id, ["old 1", "old 2", "old 3"], ["new 1", "new 2"]
    )
    assert all_messages(bob, room_id) == ["new 2", "new 1", "old 3", "old 2", "old 1"]

    assert purge(admin, room_id, cutoff) == {"purged_events": 3}
    assert all_messages(bob, room_id) == ["new 2", "new 1"]
    forward = message_bodies(bob.paginate(room_id, "f", limit=50))
    assert forward == ["new 1", "new 2"]


def test_purge_keeps_current_state(admin, alice, bob):
    room_id = alice.create_room(preset="public_chat", name="first name")
    bob.join(room_id)
    alice.set_state(room_id, "m.room.topic", "", {"topic": "kept topic"})
    before = state_ids(bob, room_id)
    cutoff = send_old_and_new(alice, room_id, ["old"], ["new"])

    purge(admin, room_id, cutoff)
    assert state_ids(bob, room_id) == before
    assert bob.state_content(room_id, "m.room.name")["name"] == "first name"
    assert bob.state_content(room_id, "m.room.topic")["topic"] == "kept topic"
    assert bob.joined_members(room_id) == {alice.user_id, bob.user_id}
    for event_id in before:
        bob.event(room_id, event_id)


def test_purge_deletes_replaced_state(admin, alice):
    room_id = alice.create_room(preset="public_chat")
    first = alice.set_state(room_id, "m.room.name", "", {"name": "replaced"})
    alice.set_state(room_id, "m.room.name", "", {"name": "current"})
    cutoff = send_old_and_new(alice, room_id, ["old"], ["new"])

    assert purge(admin, room_id, cutoff) == {"purged_events": 2}
    resp = alice.get(f"rooms/{q(room_id)}/event/{q(first)}")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert alice.state_content(room_id, "m.room.name")["name"] == "current"


def test_purged_event_not_served_from_cache(admin, alice):
    room_id = alice.create_room(preset="public_chat")
    old_id = alice.send_message(room_id, "cached then purged")
    # Read it first, so that the room's shard caches it.
    assert alice.event(room_id, old_id)["content"]["body"] == "cached then purged"
    cutoff = origin_ts(alice, room_id, old_id) + 1
    time.sleep(0.05)
    new_id = alice.send_message(room_id, "new")

    purge(admin, room_id, cutoff)
    resp = alice.get(f"rooms/{q(room_id)}/event/{q(old_id)}")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = alice.get(f"rooms/{q(room_id)}/context/{q(old_id)}")
    assert_error(resp, 404)
    assert alice.event(room_id, new_id)["content"]["body"] == "new"


def test_purge_keeps_state_seen_by_departed_member(admin, alice, bob):
    room_id = alice.create_room(preset="public_chat", name="while bob was here")
    bob.join(room_id)
    bob.leave(room_id)
    alice.set_state(room_id, "m.room.name", "", {"name": "after bob left"})
    cutoff = send_old_and_new(alice, room_id, ["old 1", "old 2"], ["new"])
    before = state_ids(bob, room_id)

    # Only the messages go: the first name is the state bob last saw.
    assert purge(admin, room_id, cutoff) == {"purged_events": 2}
    assert state_ids(bob, room_id) == before
    assert bob.state_content(room_id, "m.room.name")["name"] == "while bob was here"
    members = expect_ok(bob.get(f"rooms/{q(room_id)}/members"))["chunk"]
    assert {event["state_key"] for event in members} == {alice.user_id, bob.user_id}


def test_purge_never_deletes_newest_event(admin, alice):
    room_id = alice.create_room(preset="public_chat")
    for body in ["a", "b", "c"]:
        alice.send_message(room_id, body)
    far_future = int(time.time() * 1000) + 3600 * 1000

    assert purge(admin, room_id, far_future) == {"purged_events": 2}
    assert all_messages(alice, room_id) == ["c"]
    alice.send_message(room_id, "d")
    assert all_messages(alice, room_id) == ["d", "c"]


def test_purge_before_first_event_deletes_nothing(admin, alice):
    room_id = alice.create_room(preset="public_chat")
    alice.send_message(room_id, "kept")
    assert purge(admin, room_id, 0) == {"purged_events": 0}
    assert all_messages(alice, room_id) == ["kept"]


def test_room_works_after_purge(admin, alice, bob, carol):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    cutoff = send_old_and_new(alice, room_id, ["old"], ["new"])
    purge(admin, room_id, cutoff)

    carol.join(room_id)
    since = carol.sync()["next_batch"]
    event_id = bob.send_message(room_id, "after the purge")
    events, _ = carol.sync_timeline(room_id, since, event_id)
    assert message_bodies(events) == ["after the purge"]
    assert all_messages(carol, room_id) == ["after the purge", "new"]


def test_purged_room_survives_restart(start_server):
    first = start_server(extra_args=SECRET_ARGS)
    admin = register_with_secret(first, admin=True)
    alice = first.register(unique("restart"))
    room_id = alice.create_room(preset="public_chat", name="durable")
    cutoff = send_old_and_new(alice, room_id, ["old"], ["new"])
    purge(admin, room_id, cutoff)
    data_dir = first.data_dir
    first.stop()

    second = start_server(data_dir=data_dir, extra_args=SECRET_ARGS)
    alice = second.login(alice.user_id, alice.password)
    assert all_messages(alice, room_id) == ["new"]
    assert alice.state_content(room_id, "m.room.name")["name"] == "durable"
    alice.send_message(room_id, "after restart")
    assert all_messages(alice, room_id) == ["after restart", "new"]


@pytest.mark.parametrize(
    "body",
    [{}, {"purge_up_to_ts": -1}, {"purge_up_to_ts": "soon"}, {"purge_up_to_ts": 1.5}],
)
def test_purge_bad_body(admin, alice, body):
    room_id = alice.create_room()
    resp = admin.post(admin_path(f"rooms/{q(room_id)}/purge"), body)
    assert_error(resp, 400, "M_BAD_JSON")


def test_purge_unknown_room(admin):
    path = admin_path(f"rooms/{q('!unknown:localhost')}/purge")
    assert_error(admin.post(path, {"purge_up_to_ts": 0}), 404, "M_NOT_FOUND")


def test_purge_invalid_room_id(admin):
    path = admin_path("rooms/nope/purge")
    assert_error(admin.post(path, {"purge_up_to_ts": 0}), 400, "M_INVALID_PARAM")
