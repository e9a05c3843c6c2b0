"""Joins to restricted and knock_restricted rooms through their allow
conditions, and knocking with POST /knock/{roomIdOrAlias}."""

import pytest

from harness import (
    SHARD_HEADER,
    assert_error,
    expect_ok,
    joined_timeline,
    q,
    shard_of,
    unique,
)

RESTRICTED_VERSIONS = ["8", "9", "10", "11", "12"]
KNOCK_RESTRICTED_VERSIONS = ["10", "11", "12"]
KNOCK_VERSIONS = ["7", "8", "9", "10", "11", "12"]


@pytest.fixture
def carol(hs):
    return hs.register_on_shard("carol", 0)


def join_rules_state(join_rule: str, allowed_rooms: list[str]) -> dict:
    allow = [{"type": "m.room_membership", "room_id": room_id} for room_id in allowed_rooms]
    return {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {"join_rule": join_rule, "allow": allow},
    }


def create_guarded_room(
    creator,
    version: str,
    allowed_rooms: list[str],
    join_rule: str = "restricted",
    shard: int | None = None,
    **body,
) -> str:
    """Create a room of `version` whose join rule admits the joined members of `allowed_rooms`."""
    body = {
        "room_version": version,
        "preset": "private_chat",
        "initial_state": [join_rules_state(join_rule, allowed_rooms)],
        **body,
    }
    if shard is None:
        return creator.create_room(**body)
    return creator.create_room_on_shard(shard, **body)


def member_event(account, room_id: str, user_id: str) -> dict:
    path = f"rooms/{q(room_id)}/state/m.room.member/{q(user_id)}"
    return expect_ok(account.get(path, params={"format": "event"}))


def membership_of(account, room_id: str, user_id: str) -> str | None:
    """Return the user's membership in the room, None if they never had one."""
    path = f"rooms/{q(room_id)}/state/m.room.member/{q(user_id)}"
    resp = account.get(path)
    if resp.status_code == 404:
        return None
    return expect_ok(resp)["membership"]


def power_of(account, room_id: str, user_id: str) -> float:
    """Return the user's power level, infinite for a creator in room version 12."""
    create_path = f"rooms/{q(room_id)}/state/m.room.create/"
    create = expect_ok(account.get(create_path, params={"format": "event"}))
    creators = {create["sender"], *create["content"].get("additional_creators", [])}
    if create["content"].get("room_version") == "12" and user_id in creators:
        return float("inf")
    levels = account.state_content(room_id, "m.room.power_levels")
    return levels.get("users", {}).get(user_id, levels.get("users_default", 0))


def assert_authorised_join(observer, room_id: str, joiner) -> str:
    """Assert that `joiner` joined through an authoriser that the auth rules accept, and return it."""
    event = member_event(observer, room_id, joiner.user_id)
    assert event["content"]["membership"] == "join", event
    authoriser = event["content"].get("join_authorised_via_users_server")
    assert authoriser is not None, f"join without join_authorised_via_users_server: {event}"
    assert authoriser.endswith(":localhost"), f"authoriser {authoriser} is not local"
    assert observer.membership(room_id, authoriser) == "join"
    invite_level = observer.state_content(room_id, "m.room.power_levels").get("invite", 0)
    assert power_of(observer, room_id, authoriser) >= invite_level, (
        f"authoriser {authoriser} is below the invite level {invite_level}"
    )
    return authoriser


def join_path(endpoint: str, room_id: str) -> str:
    if endpoint == "join":
        return f"join/{q(room_id)}"
    return f"rooms/{q(room_id)}/join"


# ---------------------------------------------------------------------------
# restricted


@pytest.mark.parametrize("endpoint", ["join", "rooms_join"])
@pytest.mark.parametrize("version", RESTRICTED_VERSIONS)
def test_member_of_allowed_room_joins(alice, bob, version, endpoint):
    allowed = alice.create_room_on_shard(0, preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, version, [allowed], shard=0)

    body = expect_ok(bob.post(join_path(endpoint, room_id)))

    assert body["room_id"] == room_id
    assert assert_authorised_join(alice, room_id, bob) == alice.user_id
    assert room_id in bob.joined_rooms()


@pytest.mark.parametrize("version", RESTRICTED_VERSIONS)
def test_non_member_is_forbidden(alice, bob, version):
    allowed = alice.create_room(preset="public_chat")
    room_id = create_guarded_room(alice, version, [allowed])

    error = assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")

    assert allowed in error["error"], "the error names the allowed room"
    assert membership_of(alice, room_id, bob.user_id) is None
    assert room_id not in bob.joined_rooms()


@pytest.mark.parametrize("version", RESTRICTED_VERSIONS)
def test_allowed_room_on_other_shard(alice, bob, version):
    allowed = alice.create_room_on_shard(1, preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, version, [allowed], shard=0)
    assert shard_of(room_id, 2) != shard_of(allowed, 2)

    resp = bob.post(f"rooms/{q(room_id)}/join")

    assert expect_ok(resp)["room_id"] == room_id
    assert resp.headers[SHARD_HEADER] == "0", "the join ran on the room's shard"
    assert_authorised_join(alice, room_id, bob)


@pytest.mark.parametrize("version", RESTRICTED_VERSIONS)
def test_unknown_allowed_room_rejects(alice, bob, version):
    unknown = f"!{unique('nowhere')}:localhost"
    room_id = create_guarded_room(alice, version, [unknown])

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert membership_of(alice, room_id, bob.user_id) is None


@pytest.mark.parametrize("version", ["8", "12"])
def test_any_allowed_room_suffices(alice, bob, version):
    unknown = f"!{unique('nowhere')}:localhost"
    other = alice.create_room(preset="public_chat")
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, version, [unknown, other, allowed])

    assert bob.join(room_id) == room_id
    assert_authorised_join(alice, room_id, bob)


def test_invited_to_allowed_room_forbidden(alice, bob):
    allowed = alice.create_room(preset="private_chat")
    alice.invite(allowed, bob.user_id)
    room_id = create_guarded_room(alice, "10", [allowed])

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")


def test_left_allowed_room_forbidden(alice, bob):
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    bob.leave(allowed)
    room_id = create_guarded_room(alice, "9", [allowed])

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")


def test_invited_user_joins_without_authoriser(alice, bob):
    allowed = alice.create_room(preset="public_chat")
    room_id = create_guarded_room(alice, "10", [allowed])
    alice.invite(room_id, bob.user_id)

    assert bob.join(room_id) == room_id
    content = member_event(alice, room_id, bob.user_id)["content"]
    assert "join_authorised_via_users_server" not in content


def test_restricted_rule_before_v8(alice, bob):
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, "7", [allowed])

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("version", ["9", "12"])
def test_authoriser_has_invite_power(alice, bob, carol, hs, version):
    # adam's user ID sorts before carol's, so only the power level makes carol the choice.
    adam = hs.register_on_shard("adam", 1)
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(
        alice,
        version,
        [allowed],
        power_level_content_override={"invite": 50},
        invite=[carol.user_id, adam.user_id],
    )
    carol.join(room_id)
    adam.join(room_id)
    levels = alice.state_content(room_id, "m.room.power_levels")
    levels.setdefault("users", {})[carol.user_id] = 50
    alice.set_state(room_id, "m.room.power_levels", "", levels)
    alice.leave(room_id)

    bob.join(room_id)

    assert assert_authorised_join(carol, room_id, bob) == carol.user_id


def test_no_member_with_invite_power(alice, bob, carol):
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(
        alice,
        "10",
        [allowed],
        power_level_content_override={"invite": 50},
        invite=[carol.user_id],
    )
    carol.join(room_id)
    alice.leave(room_id)

    error = assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert "invite" in error["error"], "the error names the missing invite power"
    assert membership_of(carol, room_id, bob.user_id) is None


def test_client_cannot_name_authoriser(alice, bob):
    allowed = alice.create_room(preset="public_chat")
    room_id = create_guarded_room(alice, "10", [allowed])
    path = f"rooms/{q(room_id)}/state/m.room.member/{q(bob.user_id)}"
    content = {"membership": "join", "join_authorised_via_users_server": alice.user_id}

    assert_error(bob.put(path, content), 403, "M_FORBIDDEN")
    assert membership_of(alice, room_id, bob.user_id) is None


# ---------------------------------------------------------------------------
# knock_restricted


@pytest.mark.parametrize("version", KNOCK_RESTRICTED_VERSIONS)
def test_knock_restricted_member_joins(alice, bob, version):
    allowed = alice.create_room_on_shard(1, preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, version, [allowed], join_rule="knock_restricted")

    assert bob.join(room_id) == room_id
    assert_authorised_join(alice, room_id, bob)


@pytest.mark.parametrize("version", KNOCK_RESTRICTED_VERSIONS)
def test_knock_restricted_non_member_knocks(alice, bob, version):
    allowed = alice.create_room(preset="public_chat")
    room_id = create_guarded_room(alice, version, [allowed], join_rule="knock_restricted")

    error = assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert "knock" in error["error"].lower(), "the error points to knocking"
    assert expect_ok(bob.post(f"knock/{q(room_id)}"))["room_id"] == room_id
    assert alice.membership(room_id, bob.user_id) == "knock"
    assert_error(bob.post(f"rooms/{q(room_id)}/join"), 403, "M_FORBIDDEN")
    assert alice.membership(room_id, bob.user_id) == "knock"


def test_knock_restricted_before_v10(alice, bob):
    allowed = alice.create_room(preset="public_chat")
    bob.join(allowed)
    room_id = create_guarded_room(alice, "9", [allowed], join_rule="knock_restricted")

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    assert_error(bob.post(f"knock/{q(room_id)}"), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------
# /knock


def create_knock_room(creator, version: str, **body) -> str:
    state = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    return creator.create_room(
        room_version=version, preset="private_chat", initial_state=[state], **body
    )


def members_by_user(account, room_id: str) -> dict[str, dict]:
    chunk = expect_ok(account.get(f"rooms/{q(room_id)}/members"))["chunk"]
    return {event["state_key"]: event for event in chunk}


@pytest.mark.parametrize("version", KNOCK_VERSIONS)
def test_knock_appears_in_members(alice, bob, version):
    room_id = create_knock_room(alice, version)

    body = expect_ok(bob.post(f"knock/{q(room_id)}", {"reason": "let me in"}))

    assert body == {"room_id": room_id}
    knock = members_by_user(alice, room_id)[bob.user_id]
    assert knock["content"]["membership"] == "knock"
    assert knock["content"]["reason"] == "let me in"
    assert knock["sender"] == bob.user_id
    only_knocks = expect_ok(
        alice.get(f"rooms/{q(room_id)}/members", params={"membership": "knock"})
    )["chunk"]
    assert [event["state_key"] for event in only_knocks] == [bob.user_id]


def test_knock_reaches_admin_sync(alice, bob):
    room_id = create_knock_room(alice, "12")
    since = alice.sync()["next_batch"]

    bob.post(f"knock/{q(room_id)}")

    def shows_knock(body: dict) -> bool:
        return any(
            event["type"] == "m.room.member"
            and event["state_key"] == bob.user_id
            and event["content"]["membership"] == "knock"
            for event in joined_timeline(body, room_id)
        )

    alice.sync_until(shows_knock, since=since)


def knock_state(body: dict, room_id: str) -> list[dict] | None:
    room = body.get("rooms", {}).get("knock", {}).get(room_id)
    return None if room is None else room["knock_state"]["events"]


def test_knock_reaches_knocker_sync(alice, bob, carol):
    room_id = create_knock_room(alice, "11", name="Knock here")
    alice.invite(room_id, carol.user_id)
    since = bob.sync()["next_batch"]

    expect_ok(bob.post(f"knock/{q(room_id)}"))

    responses = bob.sync_until(lambda body: knock_state(body, room_id) is not None, since=since)
    events = knock_state(responses[-1], room_id)
    kinds = {(event["type"], event["state_key"]) for event in events}
    assert ("m.room.create", "") in kinds
    assert ("m.room.join_rules", "") in kinds
    assert ("m.room.name", "") in kinds
    own = [event for event in events if event["type"] == "m.room.member"]
    assert [event["state_key"] for event in own] == [bob.user_id]
    assert own[0]["content"]["membership"] == "knock"
    initial = bob.sync()
    assert knock_state(initial, room_id) is not None, "initial sync lacks the knocked room"
    assert room_id not in initial["rooms"]["join"]


def test_invite_state_shows_own_invite_only(alice, bob, carol):
    room_id = alice.create_room(preset="private_chat")
    alice.invite(room_id, carol.user_id)
    alice.invite(room_id, bob.user_id)

    invite = bob.sync()["rooms"]["invite"][room_id]["invite_state"]["events"]
    members = [event["state_key"] for event in invite if event["type"] == "m.room.member"]
    assert members == [bob.user_id]


def test_invited_knocker_joins(alice, bob):
    room_id = create_knock_room(alice, "11")
    expect_ok(bob.post(f"knock/{q(room_id)}"))

    assert_error(bob.post(f"join/{q(room_id)}"), 403, "M_FORBIDDEN")
    alice.invite(room_id, bob.user_id)
    assert bob.join(room_id) == room_id
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}


def test_knock_by_alias(alice, bob):
    alias_name = unique("knockme")
    room_id = create_knock_room(alice, "10", room_alias_name=alias_name)

    body = expect_ok(bob.post(f"knock/{q(f'#{alias_name}:localhost')}"))

    assert body["room_id"] == room_id
    assert alice.membership(room_id, bob.user_id) == "knock"


def test_knock_without_body(alice, bob):
    room_id = create_knock_room(alice, "12")
    resp = bob.request("POST", f"knock/{q(room_id)}")

    assert expect_ok(resp)["room_id"] == room_id
    assert alice.membership(room_id, bob.user_id) == "knock"


def test_knock_with_via_parameters(alice, bob):
    room_id = create_knock_room(alice, "12")
    resp = bob.post(
        f"knock/{q(room_id)}", params={"via": "localhost", "server_name": "localhost"}
    )

    assert expect_ok(resp)["room_id"] == room_id


def test_retracted_knock_leaves(alice, bob):
    room_id = create_knock_room(alice, "12")
    expect_ok(bob.post(f"knock/{q(room_id)}"))

    bob.leave(room_id)

    assert alice.membership(room_id, bob.user_id) == "leave"


@pytest.mark.parametrize("preset", ["public_chat", "private_chat"])
def test_knock_on_room_without_knock_rule(alice, bob, preset):
    room_id = alice.create_room(preset=preset)

    error = assert_error(bob.post(f"knock/{q(room_id)}"), 403, "M_FORBIDDEN")

    assert "knock" in error["error"]
    assert membership_of(alice, room_id, bob.user_id) is None


def test_knock_on_unknown_room(bob):
    unknown = f"!{unique('nowhere')}:localhost"
    assert_error(bob.post(f"knock/{q(unknown)}"), 404, "M_NOT_FOUND")
    alias = f"#{unique('nowhere')}:localhost"
    assert_error(bob.post(f"knock/{q(alias)}"), 404, "M_NOT_FOUND")


def test_knock_remote_room_like_join(bob):
    alias = f"#{unique('elsewhere')}:remote.example"
    join = bob.post(f"join/{q(alias)}")
    knock = bob.post(f"knock/{q(alias)}")

    assert_error(knock, join.status_code, join.json()["errcode"])


def test_knock_with_invalid_json(alice, bob):
    room_id = create_knock_room(alice, "12")
    resp = bob.request("POST", f"knock/{q(room_id)}", data="{not json")

    assert_error(resp, 400, "M_NOT_JSON")
    assert membership_of(alice, room_id, bob.user_id) is None


def test_knock_with_bad_reason(alice, bob):
    room_id = create_knock_room(alice, "12")
    resp = bob.post(f"knock/{q(room_id)}", {"reason": 5})

    assert_error(resp, 400, "M_BAD_JSON")
    assert membership_of(alice, room_id, bob.user_id) is None


def test_knock_in_v6_room(alice, bob):
    room_id = create_knock_room(alice, "6")

    error = assert_error(bob.post(f"knock/{q(room_id)}"), 403, "M_FORBIDDEN")

    assert "version 6" in error["error"]
    assert membership_of(alice, room_id, bob.user_id) is None


def test_knock_joined_invited_or_banned(alice, bob, carol, hs):
    dave = hs.register_on_shard("dave", 1)
    room_id = create_knock_room(alice, "12", invite=[bob.user_id, carol.user_id])
    bob.join(room_id)
    expect_ok(alice.post(f"rooms/{q(room_id)}/ban", {"user_id": dave.user_id}))

    for account, membership in [(bob, "join"), (carol, "invite"), (dave, "ban")]:
        resp = account.post(f"knock/{q(room_id)}")
        assert_error(resp, 403, "M_FORBIDDEN")
        assert alice.membership(room_id, account.user_id) == membership
