"""POST /createRoom: presets, initial state, versions, power levels and aliases."""

import pytest

from harness import ROOM_ID_V12, assert_error, client_path, expect_ok, q, unique


def test_create_room_v12_by_default(alice):
    room_id = alice.create_room()
    assert ROOM_ID_V12.match(room_id), f"not a room version 12 room ID: {room_id!r}"
    assert alice.state_content(room_id, "m.room.create")["room_version"] == "12"
    assert alice.joined_rooms() == {room_id}
    assert alice.membership(room_id, alice.user_id) == "join"


def test_create_room_event_order(alice, bob):
    """The spec fixes the order in which createRoom sends the events it implies."""
    alias_name = unique("order")
    room_id = alice.create_room(
        preset="private_chat",
        room_alias_name=alias_name,
        initial_state=[
            {"type": "org.example.marker", "state_key": "", "content": {"n": 1}}
        ],
        name="Order",
        topic="Order topic",
        invite=[bob.user_id],
    )
    events = alice.paginate(room_id, "f", limit=50)
    kinds = [(event["type"], event.get("state_key")) for event in events]

    assert kinds[:4] == [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.canonical_alias", ""),
    ]
    assert set(kinds[4:7]) == {
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
    }
    assert kinds[7:] == [
        ("org.example.marker", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", bob.user_id),
    ]


@pytest.mark.parametrize(
    ("preset", "join_rule", "history_visibility", "guest_access"),
    [
        ("private_chat", "invite", "shared", "can_join"),
        ("trusted_private_chat", "invite", "shared", "can_join"),
        ("public_chat", "public", "shared", "forbidden"),
    ],
)
def test_create_room_preset_state(
    alice, preset, join_rule, history_visibility, guest_access
):
    room_id = alice.create_room(preset=preset)
    assert alice.state_content(room_id, "m.room.join_rules")["join_rule"] == join_rule
    visibility = alice.state_content(room_id, "m.room.history_visibility")
    assert visibility["history_visibility"] == history_visibility
    assert guest_access_of(alice, room_id) == guest_access


def guest_access_of(account, room_id: str) -> str:
    """Return the room's guest access; a room without the state event forbids guests."""
    resp = account.get(f"rooms/{q(room_id)}/state/m.room.guest_access/")
    if resp.status_code == 404:
        assert_error(resp, 404, "M_NOT_FOUND")
        return "forbidden"
    return expect_ok(resp)["guest_access"]


def test_public_chat_joinable_without_invite(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    assert bob.join(room_id) == room_id
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}


def test_private_chat_needs_invite(alice, bob):
    room_id = alice.create_room(preset="private_chat")
    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert alice.joined_members(room_id) == {alice.user_id}


def test_trusted_private_chat_makes_invitees_creators(alice, bob):
    """In room version 12 the creator's power is expressed through additional_creators."""
    room_id = alice.create_room(preset="trusted_private_chat", invite=[bob.user_id])
    create = alice.state_content(room_id, "m.room.create")
    assert bob.user_id in create.get("additional_creators", [])
    assert alice.membership(room_id, bob.user_id) == "invite"


def test_create_room_name_and_topic(alice):
    room_id = alice.create_room(name="Lobby", topic="Talk here")
    assert alice.state_content(room_id, "m.room.name") == {"name": "Lobby"}
    assert alice.state_content(room_id, "m.room.topic")["topic"] == "Talk here"


def test_create_room_invites(alice, bob):
    room_id = alice.create_room(invite=[bob.user_id])
    assert alice.membership(room_id, bob.user_id) == "invite"
    assert bob.join(room_id) == room_id
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}


def test_initial_state_applied(alice):
    room_id = alice.create_room(
        initial_state=[
            {
                "type": "org.example.config",
                "state_key": "colour",
                "content": {"value": "teal"},
            },
        ]
    )
    assert alice.state_content(room_id, "org.example.config", "colour") == {
        "value": "teal"
    }


def test_initial_state_overrides_preset(alice):
    room_id = alice.create_room(
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "joined"},
            },
        ],
    )
    visibility = alice.state_content(room_id, "m.room.history_visibility")
    assert visibility["history_visibility"] == "joined"


def test_name_overrides_initial_state(alice):
    room_id = alice.create_room(
        name="From the name field",
        initial_state=[
            {"type": "m.room.name", "state_key": "", "content": {"name": "From state"}}
        ],
    )
    assert alice.state_content(room_id, "m.room.name") == {
        "name": "From the name field"
    }


def test_create_room_each_stable_version(alice):
    available = expect_ok(alice.get("capabilities"))["capabilities"]["m.room_versions"][
        "available"
    ]
    stable = [
        version for version, stability in available.items() if stability == "stable"
    ]
    assert "12" in stable
    for version in stable:
        room_id = alice.create_room(room_version=version)
        assert room_id.startswith("!")
        create = alice.state_content(room_id, "m.room.create")
        assert create["room_version"] == version, f"room created for version {version}"


def test_create_room_unsupported_version(alice):
    resp = alice.post("createRoom", {"room_version": "999-no-such-version"})
    assert_error(resp, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert alice.joined_rooms() == set()


def test_default_power_levels_v12(alice):
    room_id = alice.create_room()
    levels = alice.state_content(room_id, "m.room.power_levels")
    assert alice.user_id not in levels.get("users", {}), (
        "v12 creators must not be listed in users"
    )
    state_default = levels.get("state_default", 50)
    assert levels["events"]["m.room.tombstone"] > state_default


def test_power_level_override(alice, bob):
    room_id = alice.create_room(
        invite=[bob.user_id],
        power_level_content_override={"users": {bob.user_id: 75}, "state_default": 60},
    )
    levels = alice.state_content(room_id, "m.room.power_levels")
    assert levels["users"][bob.user_id] == 75
    assert levels["state_default"] == 60

    bob.join(room_id)
    bob.set_state(room_id, "m.room.topic", "", {"topic": "set by bob"})
    assert alice.state_content(room_id, "m.room.topic")["topic"] == "set by bob"


def test_power_level_override_limits_members(alice, bob):
    room_id = alice.create_room(
        preset="public_chat", power_level_content_override={"events_default": 10}
    )
    bob.join(room_id)
    path = f"rooms/{q(room_id)}/send/m.room.message/{unique('txn')}"
    resp = bob.put(path, {"msgtype": "m.text", "body": "hi"})
    assert_error(resp, 403, "M_FORBIDDEN")


# Bodies of createRoom requests whose initial events the authorization
# rules reject, by the creator's user ID.
INVALID_INITIAL_STATE = {
    "invalid-additional-creator": lambda creator: {
        "room_version": "12",
        "creation_content": {"additional_creators": ["not-a-user"]},
    },
    "v12-creator-in-users": lambda creator: {
        "room_version": "12",
        "power_level_content_override": {"users": {creator: 100}},
    },
    "creator-without-power": lambda creator: {
        "room_version": "11",
        "power_level_content_override": {"users": {creator: 0}},
    },
}


@pytest.mark.parametrize("case", sorted(INVALID_INITIAL_STATE))
def test_invalid_initial_state(alice, case):
    """No room is created when the request implies an invalid initial state."""
    before = alice.joined_rooms()
    resp = alice.post("createRoom", INVALID_INITIAL_STATE[case](alice.user_id))
    assert_error(resp, 400, "M_INVALID_ROOM_STATE")
    assert alice.joined_rooms() == before


def test_room_alias_name(alice):
    alias_name = unique("lobby")
    alias = f"#{alias_name}:localhost"
    room_id = alice.create_room(room_alias_name=alias_name)

    resolved = expect_ok(alice.get(f"directory/room/{q(alias)}"))
    assert resolved["room_id"] == room_id
    assert alice.state_content(room_id, "m.room.canonical_alias")["alias"] == alias


def test_room_alias_name_in_use(alice, bob):
    alias_name = unique("lobby")
    alice.create_room(room_alias_name=alias_name)
    resp = bob.post("createRoom", {"room_alias_name": alias_name})
    assert_error(resp, 400, "M_ROOM_IN_USE")
    assert bob.joined_rooms() == set()


def test_create_room_needs_token(hs):
    assert_error(hs.post("createRoom", {}), 401, "M_MISSING_TOKEN")


def test_identical_rooms_get_distinct_ids(hs):
    """Room version 12 derives the room ID from the create event, so two identical
    createRoom requests in the same millisecond must still get two rooms."""
    from concurrent.futures import ThreadPoolExecutor

    alice = hs.register_on_shard("twin-rooms", 0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        room_ids = list(pool.map(lambda _: alice.create_room(), range(16)))
    assert len(set(room_ids)) == 16, f"room IDs repeat: {room_ids}"
    joined = expect_ok(alice.get(client_path("joined_rooms")))["joined_rooms"]
    for room_id in room_ids:
        assert room_id in joined, f"{room_id} is missing from joined_rooms"
        create = alice.state_content(room_id, "m.room.create")
        assert create["room_version"] == "12"


def test_identical_rooms_from_every_shard(hs):
    """Identical createRoom requests accepted by different shards at once still get
    distinct room IDs: each connection below may land on either shard."""
    import requests
    from concurrent.futures import ThreadPoolExecutor

    alice = hs.register_on_shard("twin-shards", 1)

    def create(_: int) -> int:
        response = requests.post(
            hs.url + client_path("createRoom"),
            json={},
            headers={"Authorization": f"Bearer {alice.access_token}", "Connection": "close"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["room_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        room_ids = list(pool.map(create, range(48)))
    assert len(set(room_ids)) == 48, "room IDs repeat"
