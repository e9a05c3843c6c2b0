"""Registration (UIA, tokens, availability), login, logout and whoami."""

import pytest
import requests

from harness import (
    ServerFactory,
    SHARD_HEADER,
    assert_error,
    client_path,
    expect_ok,
    localpart_on_shard,
    shard_of,
    unique,
)

REGISTRATION_TOKEN = "eltrix-test-token-1"
TOKEN_VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"


def stage_lists(uia_body: dict) -> list[list[str]]:
    return [flow["stages"] for flow in uia_body["flows"]]


def test_register_offers_dummy_flow(hs):
    body = hs.start_registration({"username": unique("uia"), "password": "pw-uia-1"})
    assert ["m.login.dummy"] in stage_lists(body)
    assert isinstance(body.get("session"), str)
    assert body["session"], "UIA session is empty"


def test_register_with_dummy_auth(hs):
    localpart = unique("dummy")
    created = expect_ok(
        hs.register_response({"username": localpart, "password": "pw-dummy-1"})
    )
    assert created["user_id"] == f"@{localpart}:localhost"
    assert isinstance(created["access_token"], str) and created["access_token"]
    assert isinstance(created["device_id"], str) and created["device_id"]

    whoami = expect_ok(hs.get("account/whoami", token=created["access_token"]))
    assert whoami["user_id"] == created["user_id"]
    assert whoami["device_id"] == created["device_id"]


def test_register_keeps_device_id(hs):
    account = hs.register(unique("dev"), device_id="PHONEDEVICE")
    assert account.device_id == "PHONEDEVICE"
    assert expect_ok(account.get("account/whoami"))["device_id"] == "PHONEDEVICE"


def test_register_inhibit_login(hs):
    localpart = unique("inhibit")
    body = {"username": localpart, "password": "pw-inhibit-1", "inhibit_login": True}
    created = expect_ok(hs.register_response(body))
    assert created["user_id"] == f"@{localpart}:localhost"
    assert "access_token" not in created
    assert "device_id" not in created

    account = hs.login(localpart, "pw-inhibit-1")
    assert account.user_id == created["user_id"]


def test_register_generates_localpart(hs):
    created = expect_ok(hs.register_response({"password": "pw-generated-1"}))
    assert created["user_id"].startswith("@")
    assert created["user_id"].endswith(":localhost")
    assert len(created["user_id"]) > len("@:localhost")


def test_register_taken_username(hs):
    existing = hs.register(unique("existing"))
    resp = hs.post(
        "register", {"username": existing.localpart, "password": "pw-other-1"}
    )
    assert_error(resp, 400, "M_USER_IN_USE")


def test_register_taken_username_after_auth(hs):
    existing = hs.register(unique("existing"))
    resp = hs.post(
        "register",
        {
            "username": existing.localpart,
            "password": "pw-other-1",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert_error(resp, 400, "M_USER_IN_USE")


@pytest.mark.parametrize(
    "username", ["has space", "colon:inside", "at@sign", "x" * 300]
)
def test_register_invalid_username(hs, username):
    resp = hs.post("register", {"username": username, "password": "pw-invalid-1"})
    assert_error(resp, 400, "M_INVALID_USERNAME")


def test_available_free_username(hs):
    resp = hs.get("register/available", params={"username": unique("free")})
    assert expect_ok(resp) == {"available": True}


def test_available_taken_username(hs):
    existing = hs.register(unique("existing"))
    resp = hs.get("register/available", params={"username": existing.localpart})
    assert_error(resp, 400, "M_USER_IN_USE")


@pytest.mark.parametrize("username", ["has space", "colon:inside", "star*"])
def test_available_invalid_username(hs, username):
    resp = hs.get("register/available", params={"username": username})
    assert_error(resp, 400, "M_INVALID_USERNAME")


def test_registration_closed(start_server):
    closed = start_server(registration="closed")
    resp = closed.post(
        "register", {"username": unique("closed"), "password": "pw-closed-1"}
    )
    assert_error(resp, 403, "M_FORBIDDEN")

    with_auth = {
        "username": unique("closed"),
        "password": "pw-closed-1",
        "auth": {"type": "m.login.dummy"},
    }
    assert_error(closed.post("register", with_auth), 403, "M_FORBIDDEN")


def test_token_validity_when_closed(start_server):
    closed = start_server(registration="closed")
    resp = closed.get(TOKEN_VALIDITY, params={"token": "anything"})
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.fixture(scope="module")
def token_hs(tmp_path_factory):
    factory = ServerFactory(tmp_path_factory)
    yield factory(registration="token", registration_token=REGISTRATION_TOKEN)
    factory.stop_all()


def test_token_flow_offered(token_hs):
    body = token_hs.start_registration(
        {"username": unique("tok"), "password": "pw-tok-1"}
    )
    flows = stage_lists(body)
    assert any("m.login.registration_token" in stages for stages in flows), flows
    assert ["m.login.dummy"] not in flows, "a dummy-only flow would bypass the token"


def test_token_registration_succeeds(token_hs):
    localpart = unique("tok")
    auth = {"type": "m.login.registration_token", "token": REGISTRATION_TOKEN}
    account = token_hs.register(localpart, auth=auth)
    assert account.user_id == f"@{localpart}:localhost"
    assert expect_ok(account.get("account/whoami"))["user_id"] == account.user_id


def test_wrong_token_rejected(token_hs):
    localpart = unique("tok")
    auth = {"type": "m.login.registration_token", "token": "not-the-token"}
    resp = token_hs.register_response(
        {"username": localpart, "password": "pw-tok-1"}, auth
    )
    body = assert_error(resp, 401)
    assert "flows" in body, "a failed UIA stage must repeat the flows"

    available = token_hs.get("register/available", params={"username": localpart})
    assert expect_ok(available) == {"available": True}


def test_dummy_rejected_when_token_required(token_hs):
    localpart = unique("tok")
    resp = token_hs.register_response({"username": localpart, "password": "pw-tok-1"})
    assert_error(resp, {400, 401, 403})

    available = token_hs.get("register/available", params={"username": localpart})
    assert expect_ok(available) == {"available": True}


def test_token_validity(token_hs):
    valid = token_hs.get(TOKEN_VALIDITY, params={"token": REGISTRATION_TOKEN})
    assert expect_ok(valid) == {"valid": True}
    invalid = token_hs.get(TOKEN_VALIDITY, params={"token": "not-the-token"})
    assert expect_ok(invalid) == {"valid": False}


def test_login_flows_include_password(hs):
    flows = expect_ok(hs.get("login"))["flows"]
    assert "m.login.password" in [flow["type"] for flow in flows]


def test_login_with_localpart(hs):
    registered = hs.register(unique("login"))
    account = hs.login(registered.localpart, registered.password)
    assert account.user_id == registered.user_id
    assert account.device_id != registered.device_id
    assert account.access_token != registered.access_token

    whoami = expect_ok(account.get("account/whoami"))
    assert whoami["user_id"] == registered.user_id
    assert whoami["device_id"] == account.device_id


def test_login_with_full_user_id(hs):
    registered = hs.register(unique("login"))
    account = hs.login(registered.user_id, registered.password)
    assert account.user_id == registered.user_id


def test_login_keeps_device_id(hs):
    registered = hs.register(unique("login"))
    account = hs.login(
        registered.localpart, registered.password, device_id="LAPTOPDEVICE"
    )
    assert account.device_id == "LAPTOPDEVICE"


def login_body(user: str, password: str) -> dict:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }


def test_login_failures_look_alike(hs):
    """A wrong password and an unknown user must get identical errors."""
    registered = hs.register(unique("login"))
    wrong_password = hs.post(
        "login", login_body(registered.localpart, "not-the-password")
    )
    unknown_user = hs.post("login", login_body(unique("nobody"), "not-the-password"))

    wrong_body = assert_error(wrong_password, 403, "M_FORBIDDEN")
    unknown_body = assert_error(unknown_user, 403, "M_FORBIDDEN")
    assert wrong_body == unknown_body


def test_logout_revokes_token(hs):
    registered = hs.register(unique("logout"))
    second = hs.login(registered.localpart, registered.password)

    assert expect_ok(second.post("logout")) == {}
    assert_error(second.get("account/whoami"), 401, "M_UNKNOWN_TOKEN")
    assert expect_ok(registered.get("account/whoami"))["user_id"] == registered.user_id


def test_logout_all_revokes_every_token(hs):
    registered = hs.register(unique("logoutall"))
    second = hs.login(registered.localpart, registered.password)

    assert expect_ok(second.post("logout/all")) == {}
    assert_error(registered.get("account/whoami"), 401, "M_UNKNOWN_TOKEN")
    assert_error(second.get("account/whoami"), 401, "M_UNKNOWN_TOKEN")

    again = hs.login(registered.localpart, registered.password)
    assert expect_ok(again.get("account/whoami"))["user_id"] == registered.user_id


@pytest.mark.parametrize("shard", [0, 1])
def test_whoami_runs_on_owner_shard(hs, shard):
    account = hs.register(localpart_on_shard("owner", shard, hs.shards))
    resp = account.get("account/whoami")
    body = expect_ok(resp)
    assert body["user_id"] == account.user_id
    assert body["device_id"] == account.device_id
    assert body.get("is_guest", False) is False
    assert resp.headers.get(SHARD_HEADER) == str(shard_of(account.user_id, hs.shards))


def test_whoami_missing_token(hs):
    assert_error(hs.get("account/whoami"), 401, "M_MISSING_TOKEN")


def test_whoami_unknown_token(hs):
    assert_error(
        hs.get("account/whoami", token="not-a-real-token"), 401, "M_UNKNOWN_TOKEN"
    )


def _whoami_on_fresh_connections(hs, token: str, count: int) -> tuple[list[int], set[str]]:
    """Call whoami over `count` new connections, which SO_REUSEPORT spreads over the shards."""
    statuses, shards = [], set()
    for _ in range(count):
        response = requests.get(
            hs.url + client_path("account/whoami"),
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=10,
        )
        statuses.append(response.status_code)
        shards.add(response.headers.get("x-eltrix-shard", ""))
    return statuses, shards


@pytest.mark.parametrize("endpoint", ["logout", "logout/all"])
def test_logout_revokes_token_on_every_shard(hs, endpoint):
    account = hs.register(unique("revoke"))
    statuses, shards = _whoami_on_fresh_connections(hs, account.access_token, 24)
    assert statuses == [200] * 24, "the token must work before logout"
    assert shards, "responses carry no shard header"

    expect_ok(account.post(client_path(endpoint), {}))
    statuses, _ = _whoami_on_fresh_connections(hs, account.access_token, 24)
    assert statuses == [401] * 24, f"a revoked token was accepted: {statuses}"
