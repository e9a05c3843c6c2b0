"""The admin API's account endpoints, statistics, shared-secret registration and `--create-admin`.

Room endpoints are in test_admin_rooms.py, which imports the helpers here.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from datetime import datetime, timezone

import pytest
import requests

from harness import (
    Account,
    Homeserver,
    assert_error,
    client_path,
    create_admin_cli,
    default_binary,
    expect_ok,
    q,
    unique,
)

SHARED_SECRET = "admin-test-shared-secret"
ADMIN = "/_eltrix/admin/v1"
REGISTER = "/_synapse/admin/v1/register"
SECRET_ARGS = ("--registration-shared-secret", SHARED_SECRET)


@pytest.fixture(scope="module")
def hs(tmp_path_factory):
    """A two-shard server with shared-secret registration, replacing the default `hs` here."""
    root = tmp_path_factory.mktemp("hs")
    server = Homeserver(
        binary=default_binary(),
        data_dir=root / "data",
        log_path=root / "eltrix.log",
        extra_args=list(SECRET_ARGS),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def admin(hs):
    return register_with_secret(hs, admin=True)


@pytest.fixture
def carol(hs):
    return hs.register_on_shard("carol", 1)


# ---------------------------------------------------------------------------
# Helpers, also used by test_admin_rooms.py


def registration_mac(
    nonce: str, username: str, password: str, admin: bool, secret: str = SHARED_SECRET
) -> str:
    """Return the hex HMAC-SHA1 that Synapse's shared-secret registration expects."""
    message = b"\x00".join(
        [
            nonce.encode(),
            username.encode(),
            password.encode(),
            b"admin" if admin else b"notadmin",
        ]
    )
    return hmac.new(secret.encode(), message, hashlib.sha1).hexdigest()


def get_nonce(hs: Homeserver) -> str:
    body = expect_ok(hs.get(REGISTER))
    assert isinstance(body.get("nonce"), str) and body["nonce"], body
    return body["nonce"]


def secret_body(
    nonce: str,
    username: str,
    password: str,
    admin: bool,
    secret: str = SHARED_SECRET,
) -> dict:
    return {
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": registration_mac(nonce, username, password, admin, secret),
    }


def register_with_secret(
    hs: Homeserver,
    username: str | None = None,
    *,
    admin: bool = False,
    secret: str = SHARED_SECRET,
) -> Account:
    username = username or unique("admin" if admin else "user")
    password = f"pw-{username}"
    body = secret_body(get_nonce(hs), username, password, admin, secret)
    created = expect_ok(hs.post(REGISTER, body))
    return Account(
        hs, created["user_id"], created["access_token"], created["device_id"], password
    )


def admin_path(path: str) -> str:
    return f"{ADMIN}/{path}"


def list_all(account: Account, collection: str, limit: int) -> list[dict]:
    """Follow `next_offset` through a list endpoint and return every item."""
    items: list[dict] = []
    offset = 0
    for _page in range(1000):
        body = expect_ok(
            account.get(
                admin_path(collection), params={"limit": limit, "offset": offset}
            )
        )
        assert len(body[collection]) <= limit, body
        items.extend(body[collection])
        if "next_offset" not in body:
            assert offset + len(body[collection]) >= body["total"], body
            return items
        assert body["next_offset"] == offset + len(body[collection]), body
        offset = body["next_offset"]
    raise AssertionError(f"{collection} still had a next_offset after 1000 pages")


def parse_rfc3339(text: str) -> datetime:
    assert text.endswith("Z"), f"{text!r} is not in UTC"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def whoami_status(hs: Homeserver, token: str) -> requests.Response:
    """Call whoami over a new connection, which may land on any shard."""
    return requests.get(
        hs.url + client_path("account/whoami"),
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )


def login_response(hs: Homeserver, user: str, password: str) -> requests.Response:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    return hs.post("login", body)


# Every admin endpoint, with IDs that parse, for the authentication checks.
ENDPOINTS = [
    ("GET", "users"),
    ("POST", "users"),
    ("GET", "users/@someone:localhost"),
    ("POST", "users/@someone:localhost/deactivate"),
    ("GET", "statistics"),
    ("GET", "rooms"),
    ("GET", "rooms/!nowhere:localhost"),
    ("DELETE", "rooms/!nowhere:localhost"),
    ("POST", "rooms/!nowhere:localhost/purge"),
]


# ---------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_admin_endpoint_needs_token(hs, method, path):
    resp = hs.request(method, admin_path(path), json_body={})
    assert_error(resp, 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_admin_endpoint_rejects_unknown_token(hs, method, path):
    resp = hs.request(method, admin_path(path), token="elx_not-a-token", json_body={})
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_admin_endpoint_rejects_non_admin(alice, method, path):
    resp = alice.request(method, admin_path(path), json_body={})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_non_admin_cannot_deactivate(alice, bob):
    resp = alice.post(admin_path(f"users/{q(bob.user_id)}/deactivate"))
    assert_error(resp, 403, "M_FORBIDDEN")
    assert expect_ok(bob.get("account/whoami"))["user_id"] == bob.user_id


# ---------------------------------------------------------------------------
# Listing accounts


def test_list_users_fields(admin, alice):
    users = list_all(admin, "users", 1000)
    by_id = {user["user_id"]: user for user in users}
    assert alice.user_id in by_id, f"{alice.user_id} missing from {list(by_id)}"

    entry = by_id[alice.user_id]
    assert set(entry) == {"user_id", "displayname", "admin", "deactivated", "created_at"}
    assert entry["displayname"] is None
    assert entry["admin"] is False
    assert entry["deactivated"] is False
    age = datetime.now(timezone.utc) - parse_rfc3339(entry["created_at"])
    assert abs(age.total_seconds()) < 300, entry["created_at"]
    assert by_id[admin.user_id]["admin"] is True


def test_list_users_sorted_by_user_id(admin, alice, bob):
    ids = [user["user_id"] for user in list_all(admin, "users", 1000)]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))


def test_list_users_pages(hs, admin):
    for _ in range(3):
        hs.register(unique("paged"))
    whole = expect_ok(admin.get(admin_path("users"), params={"limit": 1000}))
    assert "next_offset" not in whole
    assert whole["total"] == len(whole["users"])
    assert whole["total"] >= 4

    paged = list_all(admin, "users", 2)
    assert paged == whole["users"]

    first = expect_ok(admin.get(admin_path("users"), params={"limit": 2}))
    assert len(first["users"]) == 2
    assert first["next_offset"] == 2
    assert first["total"] == whole["total"]


def test_list_users_default_and_maximum_limit(admin):
    default = expect_ok(admin.get(admin_path("users")))
    assert len(default["users"]) == min(default["total"], 100)
    large = expect_ok(admin.get(admin_path("users"), params={"limit": 5000}))
    assert len(large["users"]) == min(large["total"], 1000)


def test_list_users_offset_past_end(admin):
    total = expect_ok(admin.get(admin_path("users")))["total"]
    body = expect_ok(admin.get(admin_path("users"), params={"offset": total + 5}))
    assert body["users"] == []
    assert body["total"] == total
    assert "next_offset" not in body


@pytest.mark.parametrize("collection", ["users", "rooms"])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": "0"},
        {"limit": ""},
        {"offset": "-3"},
        {"offset": "two"},
        {"offset": "99999999999999999999999"},
    ],
)
def test_list_rejects_invalid_paging(admin, collection, params):
    resp = admin.get(admin_path(collection), params=params)
    assert_error(resp, 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# Creating and reading accounts


def test_create_user(hs, admin):
    username = unique("created")
    body = expect_ok(
        admin.post(
            admin_path("users"),
            {"username": username, "password": "s3cret", "admin": False},
        )
    )
    assert body["user_id"] == f"@{username}:localhost"
    assert body["admin"] is False
    assert body["deactivated"] is False
    assert body["displayname"] is None
    parse_rfc3339(body["created_at"])

    account = hs.login(username, "s3cret")
    assert expect_ok(account.get("account/whoami"))["user_id"] == body["user_id"]
    assert_error(account.get(admin_path("statistics")), 403, "M_FORBIDDEN")
    fetched = expect_ok(admin.get(admin_path(f"users/{q(body['user_id'])}")))
    assert fetched == body


def test_create_admin_account(hs, admin):
    username = unique("second-admin")
    body = expect_ok(
        admin.post(
            admin_path("users"), {"username": username, "password": "pw", "admin": True}
        )
    )
    assert body["admin"] is True
    second = hs.login(username, "pw")
    expect_ok(second.get(admin_path("statistics")))


def test_create_user_admin_defaults_to_false(hs, admin):
    username = unique("plain")
    body = expect_ok(
        admin.post(admin_path("users"), {"username": username, "password": "pw"})
    )
    assert body["admin"] is False


def test_create_user_taken(admin, alice):
    resp = admin.post(
        admin_path("users"), {"username": alice.localpart, "password": "other"}
    )
    assert_error(resp, 400, "M_USER_IN_USE")
    # The existing account keeps its password.
    alice.hs.login(alice.user_id, alice.password)


@pytest.mark.parametrize("username", ["Upper", "has space", "a:b", ""])
def test_create_user_invalid_username(admin, username):
    resp = admin.post(admin_path("users"), {"username": username, "password": "pw"})
    assert_error(resp, 400, "M_INVALID_USERNAME")


@pytest.mark.parametrize(
    "body",
    [
        {"password": "pw"},
        {"username": "nopassword"},
        {"username": 5, "password": "pw"},
        {"username": "x", "password": "pw", "admin": "yes"},
        ["not", "an", "object"],
    ],
)
def test_create_user_bad_json(admin, body):
    assert_error(admin.post(admin_path("users"), body), 400, "M_BAD_JSON")


def test_create_user_not_json(admin):
    resp = admin.request("POST", admin_path("users"), data=b"{nope")
    assert_error(resp, 400, "M_NOT_JSON")


def test_create_user_empty_password(admin):
    resp = admin.post(admin_path("users"), {"username": unique("e"), "password": ""})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_get_user(admin, alice):
    body = expect_ok(admin.get(admin_path(f"users/{q(alice.user_id)}")))
    assert body["user_id"] == alice.user_id
    assert body["admin"] is False


@pytest.mark.parametrize(
    "user_id", ["@never-registered:localhost", "@someone:other.example"]
)
def test_get_user_unknown(admin, user_id):
    assert_error(admin.get(admin_path(f"users/{q(user_id)}")), 404, "M_NOT_FOUND")


def test_get_user_invalid_id(admin):
    assert_error(admin.get(admin_path("users/not-a-user-id")), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# Deactivation


def test_deactivate_revokes_every_token(hs, admin, carol):
    second = hs.login(carol.user_id, carol.password)
    tokens = [carol.access_token, second.access_token]
    # Spread requests over the shards so each token is cached on them.
    for token in tokens:
        for _ in range(8):
            assert whoami_status(hs, token).status_code == 200

    body = expect_ok(admin.post(admin_path(f"users/{q(carol.user_id)}/deactivate")))
    assert body["user_id"] == carol.user_id
    assert body["deactivated"] is True

    for token in tokens:
        for _ in range(8):
            assert_error(whoami_status(hs, token), 401, "M_UNKNOWN_TOKEN")


def test_deactivated_login_fails(hs, admin, carol):
    expect_ok(admin.post(admin_path(f"users/{q(carol.user_id)}/deactivate")))
    resp = login_response(hs, carol.user_id, carol.password)
    assert_error(resp, 403, "M_USER_DEACTIVATED")
    # A wrong password does not reveal that the account is deactivated.
    resp = login_response(hs, carol.user_id, "wrong password")
    assert_error(resp, 403, "M_FORBIDDEN")


def test_deactivated_user_leaves_rooms(admin, bob, carol):
    public = bob.create_room(preset="public_chat")
    carol.join(public)
    private = bob.create_room(preset="private_chat")
    bob.invite(private, carol.user_id)
    assert bob.joined_members(public) == {bob.user_id, carol.user_id}

    expect_ok(admin.post(admin_path(f"users/{q(carol.user_id)}/deactivate")))

    assert bob.joined_members(public) == {bob.user_id}
    assert bob.membership(public, carol.user_id) == "leave"
    assert bob.membership(private, carol.user_id) == "leave"
    leave = expect_ok(
        bob.get(
            f"rooms/{q(public)}/state/m.room.member/{q(carol.user_id)}",
            params={"format": "event"},
        )
    )
    assert leave["sender"] == carol.user_id


def test_deactivated_user_is_listed(admin, carol):
    expect_ok(admin.post(admin_path(f"users/{q(carol.user_id)}/deactivate")))
    body = expect_ok(admin.get(admin_path(f"users/{q(carol.user_id)}")))
    assert body["deactivated"] is True
    listed = {user["user_id"]: user for user in list_all(admin, "users", 1000)}
    assert listed[carol.user_id]["deactivated"] is True


def test_deactivate_twice(admin, carol):
    path = admin_path(f"users/{q(carol.user_id)}/deactivate")
    expect_ok(admin.post(path))
    assert expect_ok(admin.post(path))["deactivated"] is True


def test_deactivate_unknown_user(admin):
    path = admin_path(f"users/{q('@never-registered:localhost')}/deactivate")
    assert_error(admin.post(path), 404, "M_NOT_FOUND")


def test_deactivate_invalid_user_id(admin):
    assert_error(
        admin.post(admin_path("users/nobody/deactivate")), 400, "M_INVALID_PARAM"
    )


# ---------------------------------------------------------------------------
# Statistics


def test_statistics_count_accounts_and_rooms(start_server):
    server = start_server(extra_args=SECRET_ARGS)
    admin = register_with_secret(server, admin=True)
    active = server.register(unique("active"))
    leaving = server.register(unique("leaving"))
    active.create_room()
    active.create_room(preset="public_chat")
    expect_ok(admin.post(admin_path(f"users/{q(leaving.user_id)}/deactivate")))

    body = expect_ok(admin.get(admin_path("statistics")))
    assert body == {
        "users": {"total": 3, "active_30d": 2},
        "rooms": {"total": 2, "local": 2},
        "media": {"total_size_bytes": 0, "count": 0},
        "federation": {"known_servers": 0, "active_servers": 0},
    }


# ---------------------------------------------------------------------------
# Shared-secret registration


def test_nonces_differ(hs):
    assert get_nonce(hs) != get_nonce(hs)


def test_shared_secret_registers_admin(hs):
    username = unique("ssadmin")
    nonce = get_nonce(hs)
    body = expect_ok(hs.post(REGISTER, secret_body(nonce, username, "pw", True)))
    assert body["user_id"] == f"@{username}:localhost"
    assert body["home_server"] == "localhost"
    assert isinstance(body["device_id"], str) and body["device_id"]

    account = Account(hs, body["user_id"], body["access_token"], body["device_id"], "pw")
    whoami = expect_ok(account.get("account/whoami"))
    assert whoami["device_id"] == body["device_id"]
    expect_ok(account.get(admin_path("statistics")))


def test_shared_secret_registers_non_admin(hs):
    account = register_with_secret(hs, admin=False)
    assert_error(account.get(admin_path("users")), 403, "M_FORBIDDEN")
    hs.login(account.user_id, account.password)


def test_shared_secret_lowercases_username(hs, admin):
    username = unique("MixedCase")
    nonce = get_nonce(hs)
    body = expect_ok(hs.post(REGISTER, secret_body(nonce, username, "pw", False)))
    assert body["user_id"] == f"@{username.lower()}:localhost"


def test_shared_secret_wrong_mac(hs, admin):
    username = unique("wrongmac")
    body = secret_body(get_nonce(hs), username, "pw", True, secret="not the secret")
    assert_error(hs.post(REGISTER, body), 403, "M_FORBIDDEN")
    path = admin_path(f"users/{q(f'@{username}:localhost')}")
    assert_error(admin.get(path), 404, "M_NOT_FOUND")


def test_shared_secret_mac_covers_admin_flag(hs):
    username = unique("flag")
    nonce = get_nonce(hs)
    body = secret_body(nonce, username, "pw", admin=False)
    body["admin"] = True
    assert_error(hs.post(REGISTER, body), 403, "M_FORBIDDEN")


def test_shared_secret_mac_not_hex(hs):
    body = secret_body(get_nonce(hs), unique("hex"), "pw", False)
    body["mac"] = "zz" * 20
    assert_error(hs.post(REGISTER, body), 403, "M_FORBIDDEN")


def test_shared_secret_nonce_single_use(hs):
    nonce = get_nonce(hs)
    expect_ok(hs.post(REGISTER, secret_body(nonce, unique("first"), "pw", False)))
    resp = hs.post(REGISTER, secret_body(nonce, unique("second"), "pw", False))
    assert_error(resp, 400, "M_UNKNOWN")


def test_shared_secret_wrong_mac_uses_up_nonce(hs):
    nonce = get_nonce(hs)
    username = unique("retry")
    bad = secret_body(nonce, username, "pw", False, secret="guess")
    assert_error(hs.post(REGISTER, bad), 403, "M_FORBIDDEN")
    good = secret_body(nonce, username, "pw", False)
    assert_error(hs.post(REGISTER, good), 400, "M_UNKNOWN")


def test_shared_secret_unknown_nonce(hs):
    body = secret_body("never-issued", unique("unknown"), "pw", False)
    assert_error(hs.post(REGISTER, body), 400, "M_UNKNOWN")


def test_shared_secret_username_taken(hs, alice):
    body = secret_body(get_nonce(hs), alice.localpart, "pw", False)
    assert_error(hs.post(REGISTER, body), 400, "M_USER_IN_USE")


def test_shared_secret_invalid_username(hs):
    body = secret_body(get_nonce(hs), "has space", "pw", False)
    assert_error(hs.post(REGISTER, body), 400, "M_INVALID_USERNAME")


def test_shared_secret_missing_mac(hs):
    body = secret_body(get_nonce(hs), unique("nomac"), "pw", False)
    del body["mac"]
    assert_error(hs.post(REGISTER, body), 400, "M_BAD_JSON")


def test_shared_secret_disabled_without_secret(start_server):
    server = start_server()
    assert_error(server.get(REGISTER), 400, "M_UNKNOWN")
    body = secret_body("any", unique("off"), "pw", False)
    assert_error(server.post(REGISTER, body), 400, "M_UNKNOWN")


def test_shared_secret_from_environment(start_server, monkeypatch):
    monkeypatch.setenv("ELTRIX_REGISTRATION_SHARED_SECRET", "secret-from-env")
    server = start_server()
    account = register_with_secret(server, admin=True, secret="secret-from-env")
    expect_ok(account.get(admin_path("statistics")))


# ---------------------------------------------------------------------------
# `eltrix --create-admin`


def test_cli_creates_admin_from_password_file(start_server, tmp_path):
    data_dir = tmp_path / "data"
    password_file = tmp_path / "password"
    password_file.write_text("first admin password\n")
    result = create_admin_cli(data_dir, "root", "--password-file", str(password_file))
    assert result.returncode == 0, result.stderr
    assert "@root:localhost" in result.stdout

    server = start_server(data_dir=data_dir)
    root = server.login("root", "first admin password")
    users = {user["user_id"]: user for user in list_all(root, "users", 100)}
    assert users["@root:localhost"]["admin"] is True
    assert users["@root:localhost"]["deactivated"] is False


def test_cli_reads_password_from_stdin(start_server, tmp_path):
    data_dir = tmp_path / "data"
    result = create_admin_cli(data_dir, "piped", stdin="from stdin\r\n")
    assert result.returncode == 0, result.stderr

    server = start_server(data_dir=data_dir)
    account = server.login("piped", "from stdin")
    expect_ok(account.get(admin_path("statistics")))


def test_cli_rejects_existing_user(tmp_path):
    data_dir = tmp_path / "data"
    first = create_admin_cli(data_dir, "twice", stdin="pw\n")
    assert first.returncode == 0, first.stderr
    second = create_admin_cli(data_dir, "twice", stdin="other\n")
    assert second.returncode == 1
    assert "already exists" in second.stderr


def test_cli_rejects_invalid_username(tmp_path):
    result = create_admin_cli(tmp_path / "data", "Not Valid", stdin="pw\n")
    assert result.returncode == 1
    assert "invalid username" in result.stderr


def test_cli_rejects_empty_password(tmp_path):
    result = create_admin_cli(tmp_path / "data", "empty", stdin="\n")
    assert result.returncode == 1
    assert "password is empty" in result.stderr


def test_cli_rejects_missing_password_file(tmp_path):
    result = create_admin_cli(
        tmp_path / "data", "nofile", "--password-file", str(tmp_path / "missing")
    )
    assert result.returncode == 1
    assert "failed to read the password" in result.stderr


def test_cli_refuses_running_server(start_server, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(data_dir=data_dir)
    result = create_admin_cli(data_dir, "whilerunning", stdin="pw\n")
    assert result.returncode == 1
    assert "in use by another running server" in result.stderr
    expect_ok(server.get("/health"))
    resp = login_response(server, "whilerunning", "pw")
    assert_error(resp, 403, "M_FORBIDDEN")
