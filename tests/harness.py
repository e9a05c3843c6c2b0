"""Start Eltrix server processes and drive them over the Matrix client-server API.

Paths given to the request helpers are relative to `/_matrix/client/v3` unless
they start with `/`, so `alice.get("account/whoami")` and
`hs.get("/health")` both work. Path components that contain Matrix IDs must be
percent-encoded with `q()`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENT_V3 = "/_matrix/client/v3"
SERVER_NAME = "localhost"
SHARD_HEADER = "x-eltrix-shard"

# Seconds. HTTP_TIMEOUT bounds every request that does not pass its own timeout.
HTTP_TIMEOUT = 30
HEALTH_TIMEOUT = 20
STOP_GRACE = 10
SYNC_DEADLINE = 10

# Room version 12 room IDs and event IDs are a sigil followed by an unpadded
# URL-safe base64 SHA-256 reference hash (43 characters).
ROOM_ID_V12 = re.compile(r"^![A-Za-z0-9_-]{43}$")
EVENT_ID_V12 = re.compile(r"^\$[A-Za-z0-9_-]{43}$")
USER_ID_LOCAL = re.compile(r"^@[a-z0-9._=/+-]+:localhost$")

# A filter that keeps every test timeline short of the `limited` cut-off.
WIDE_TIMELINE = {"room": {"timeline": {"limit": 200}}}

# Every server started in this pytest session, so conftest can attach the
# stderr of each one to a failing test's report.
ALL_SERVERS: list["Homeserver"] = []


def default_binary() -> Path:
    return Path(
        os.environ.get("ELTRIX_BIN", REPO_ROOT / "target" / "release" / "eltrix")
    )


def create_admin_cli(
    data_dir, username: str, *extra: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """Run `eltrix --create-admin USERNAME` on the data directory of a stopped server."""
    return subprocess.run(
        [
            str(default_binary()),
            "--data-dir",
            str(data_dir),
            "--server-name",
            "localhost",
            "--create-admin",
            username,
            *extra,
        ],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def shard_of(identifier: str, shards: int) -> int:
    """Return the shard that owns a full user or room ID, as the server computes it."""
    digest = hashlib.sha256(identifier.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def localpart_on_shard(
    base: str, shard: int, shards: int, server_name: str = SERVER_NAME
) -> str:
    """Return a fresh localpart starting with `base` whose user ID is owned by `shard`."""
    prefix = f"{base}-{uuid.uuid4().hex[:8]}"
    for suffix in range(10_000):
        localpart = f"{prefix}-{suffix}"
        if shard_of(f"@{localpart}:{server_name}", shards) == shard:
            return localpart
    raise AssertionError(
        f"no localpart with prefix {prefix!r} maps to shard {shard} of {shards}"
    )


def unique(base: str) -> str:
    """Return `base` with a random suffix, valid as a localpart, alias or txn ID."""
    return f"{base}-{uuid.uuid4().hex[:10]}"


def q(identifier: str) -> str:
    """Percent-encode one path component, including `!`, `#`, `$`, `:` and `/`."""
    return quote(identifier, safe="")


def client_path(path: str) -> str:
    return path if path.startswith("/") else f"{CLIENT_V3}/{path}"


def tls_pair(directory: Path) -> tuple[Path, Path]:
    """Return a self-signed certificate and key for `localhost` in `directory`,
    made with the openssl command on first use."""
    certificate, private_key = directory / "tls.crt", directory / "tls.key"
    if not certificate.exists():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(private_key), "-out", str(certificate),
                "-days", "30", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    return certificate, private_key


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# Response checks


def describe(resp: Any) -> str:
    """Summarise a response for assertion messages: request line, status and body."""
    request = getattr(resp, "request", None)
    method = getattr(request, "method", None) or getattr(resp, "method", "?")
    url = getattr(resp, "url", None) or getattr(resp, "path", "?")
    text = resp.content[:800].decode("utf-8", "replace")
    return f"{method} {url} -> {resp.status_code}: {text}"


def json_body(resp: Any) -> Any:
    content_type = resp.headers.get("content-type", "")
    assert content_type.startswith("application/json"), (
        f"expected an application/json response, got {content_type!r}: {describe(resp)}"
    )
    try:
        return json.loads(resp.content)
    except ValueError as err:
        raise AssertionError(
            f"response body is not JSON ({err}): {describe(resp)}"
        ) from None


def expect_ok(resp: Any, status: int = 200) -> Any:
    """Assert `status` and return the decoded JSON body."""
    assert resp.status_code == status, describe(resp)
    return json_body(resp)


def assert_error(
    resp: Any, status: int | set[int], errcode: str | set[str] | None = None
) -> dict:
    """Assert a standard Matrix error response and return its body.

    `status` and `errcode` may be sets where the specification allows more than
    one response. Every error must carry string `errcode` and `error` fields.
    """
    statuses = {status} if isinstance(status, int) else status
    assert resp.status_code in statuses, (
        f"expected status {sorted(statuses)}: {describe(resp)}"
    )
    body = json_body(resp)
    assert isinstance(body, dict), f"error body is not an object: {describe(resp)}"
    assert isinstance(body.get("errcode"), str), (
        f"error without errcode: {describe(resp)}"
    )
    assert isinstance(body.get("error"), str), (
        f"error without error text: {describe(resp)}"
    )
    if errcode is not None:
        errcodes = {errcode} if isinstance(errcode, str) else errcode
        assert body["errcode"] in errcodes, (
            f"expected errcode {sorted(errcodes)}: {describe(resp)}"
        )
    return body


def assert_client_event(event: dict, room_id: str | None = None) -> None:
    """Assert the fields of a room event in the client format (hashes and signatures are stripped there)."""
    assert EVENT_ID_V12.match(event.get("event_id", "")), f"bad event_id in {event}"
    assert USER_ID_LOCAL.match(event.get("sender", "")), f"bad sender in {event}"
    assert isinstance(event.get("type"), str) and event["type"], f"bad type in {event}"
    assert isinstance(event.get("content"), dict), f"bad content in {event}"
    timestamp = event.get("origin_server_ts")
    assert isinstance(timestamp, int), f"origin_server_ts is not an integer in {event}"
    now_ms = int(time.time() * 1000)
    assert abs(now_ms - timestamp) < 24 * 3600 * 1000, (
        f"origin_server_ts {timestamp} is not near now"
    )
    if "unsigned" in event:
        assert isinstance(event["unsigned"], dict), (
            f"unsigned is not an object in {event}"
        )
    if room_id is not None:
        assert event.get("room_id") == room_id, f"expected room_id {room_id} in {event}"


def message_bodies(events: list[dict]) -> list[str]:
    """Return the bodies of the m.room.message events, in the given order."""
    return [
        e["content"].get("body") for e in events if e.get("type") == "m.room.message"
    ]


def event_ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


# ---------------------------------------------------------------------------
# Raw HTTP, for bodies that requests cannot send the way a test needs


@dataclass
class RawResponse:
    method: str
    path: str
    status_code: int
    headers: http.client.HTTPMessage
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def send_raw(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> RawResponse:
    """Send one HTTP/1.1 request over a fresh socket and read the response.

    Unlike requests, this keeps reading after the server stops accepting a large
    body, so a server that responds with 413 before reading the whole body still
    produces a response here.
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The server closed its side after rejecting the body early.
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            content = response.read()
        except (ConnectionResetError, http.client.RemoteDisconnected) as err:
            raise AssertionError(
                f"{method} {path} with a {len(body)}-byte body: the server closed the "
                f"connection without a response ({err!r})"
            ) from None
    return RawResponse(method, path, response.status, response.headers, content)


# ---------------------------------------------------------------------------
# Server process


@dataclass
class Homeserver:
    """One run of the Eltrix binary on a data directory, listening on 127.0.0.1."""

    binary: Path
    data_dir: Path
    log_path: Path
    shards: int = 2
    registration: str = "open"
    registration_token: str | None = None
    server_name: str = SERVER_NAME
    extra_args: list[str] = field(default_factory=list)
    # Tests register many accounts from one address, so the request rate
    # limits are off unless a test turns them on.
    rate_limits: bool = False
    # With federation, the server also serves the server-server API over TLS
    # on `federation_port`, and its server name is `localhost:<that port>`,
    # which other servers on loopback reach without DNS or delegation.
    federation: bool = False
    port: int = 0
    federation_port: int = 0
    process: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)

    host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def federation_url(self) -> str:
        return f"https://{self.host}:{self.federation_port}"

    def command(self) -> list[str]:
        args = [
            str(self.binary),
            "--shards",
            str(self.shards),
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"{self.host}:{self.port}",
            "--server-name",
            self.server_name,
            "--registration",
            self.registration,
        ]
        if self.registration_token is not None:
            args += ["--registration-token", self.registration_token]
        if not self.rate_limits:
            args += ["--rate-limits", "false"]
        if self.federation:
            certificate, private_key = tls_pair(self.data_dir.parent)
            args += [
                "--federation-listen",
                f"{self.host}:{self.federation_port}",
                "--tls-certificate",
                str(certificate),
                "--tls-private-key",
                str(private_key),
                "--federation-verify-certificates",
                "false",
            ]
        return args + self.extra_args

    def start(self, keep_ports: bool = False) -> "Homeserver":
        """Start the process and wait until /health reports every shard serving.

        Picking a free port and binding it are not atomic, so a start that fails
        before /health responds is retried on another port. With `keep_ports`,
        a restart listens on the ports of the previous run, which a federating
        server needs because its server name contains the port.
        """
        if not self.binary.exists():
            raise AssertionError(
                f"server binary {self.binary} does not exist: build it with "
                "`cargo build --release` or point ELTRIX_BIN at it"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ALL_SERVERS.append(self)
        for _attempt in range(3):
            if not keep_ports:
                self.port = free_port()
                if self.federation:
                    self.federation_port = free_port()
                    self.server_name = f"localhost:{self.federation_port}"
            with open(self.log_path, "ab") as log:
                log.write(f"==> starting: {' '.join(self.command())}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
                )
            if self._wait_healthy():
                return self
            if self.process.poll() is None:
                self.kill()
                break
        raise AssertionError(
            f"server did not report healthy within {HEALTH_TIMEOUT} s; log tail:\n{self.log_tail()}"
        )

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                resp = self.session.get(f"{self.url}/health", timeout=2)
                if resp.status_code == 200 and resp.json() == {"status": "healthy"}:
                    return True
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> int | None:
        """Send SIGTERM, wait STOP_GRACE seconds, then SIGKILL. Return the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the process, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_GRACE)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, start: int = 0, max_chars: int = 20_000) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
        return text[-max_chars:]

    # -- HTTP ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> requests.Response:
        """Send a request; `json_body` is encoded as JSON, `data` is sent as given."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        return self.session.request(
            method,
            self.url + client_path(path),
            data=data,
            params=params,
            headers=all_headers,
            timeout=timeout,
        )

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request("POST", path, json_body=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request("PUT", path, json_body=body, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def raw(
        self, method: str, path: str, body: bytes, headers: dict | None = None
    ) -> RawResponse:
        return send_raw(self.host, self.port, method, client_path(path), body, headers)

    # -- Accounts -----------------------------------------------------------

    def start_registration(self, body: dict) -> dict:
        """POST /register without auth and return the 401 UIA body (flows, session)."""
        return expect_ok(self.post("register", body), status=401)

    def register_response(
        self, body: dict, auth: dict | None = None
    ) -> requests.Response:
        """Run the UIA flow for /register: a first POST for the session, then `auth` with it."""
        session = self.start_registration(body).get("session")
        stage = dict(auth or {"type": "m.login.dummy"})
        if session is not None:
            stage["session"] = session
        return self.post("register", {**body, "auth": stage})

    def register(
        self,
        localpart: str | None = None,
        *,
        password: str | None = None,
        device_id: str | None = None,
        auth: dict | None = None,
    ) -> "Account":
        """Register an account through UIA (m.login.dummy unless `auth` is given)."""
        localpart = localpart or unique("user")
        password = password or f"pw-{localpart}"
        body: dict[str, Any] = {"username": localpart, "password": password}
        if device_id is not None:
            body["device_id"] = device_id
        created = expect_ok(self.register_response(body, auth))
        return Account(
            self,
            created["user_id"],
            created["access_token"],
            created["device_id"],
            password,
        )

    def register_on_shard(self, base: str, shard: int) -> "Account":
        """Register a user whose ID is owned by `shard`, and check that whoami runs there."""
        account = self.register(
            localpart_on_shard(base, shard, self.shards, self.server_name)
        )
        resp = account.get("account/whoami")
        expect_ok(resp)
        assert resp.headers.get(SHARD_HEADER) == str(shard), (
            f"whoami for {account.user_id} ran on shard {resp.headers.get(SHARD_HEADER)!r}, "
            f"expected its owner shard {shard}"
        )
        return account

    def login(
        self, user: str, password: str, device_id: str | None = None
    ) -> "Account":
        body: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        logged_in = expect_ok(self.post("login", body))
        return Account(
            self,
            logged_in["user_id"],
            logged_in["access_token"],
            logged_in["device_id"],
            password,
        )

    def account(
        self, user_id: str, access_token: str, device_id: str, password: str
    ) -> "Account":
        """Rebind an account from an earlier run of the server to this one."""
        return Account(self, user_id, access_token, device_id, password)


class ServerFactory:
    """Starts servers with non-default options and stops all of them at teardown."""

    def __init__(self, tmp_path_factory: Any):
        self.tmp_path_factory = tmp_path_factory
        self.servers: list[Homeserver] = []

    def __call__(
        self,
        *,
        shards: int = 2,
        registration: str = "open",
        registration_token: str | None = None,
        data_dir: Path | None = None,
        server_name: str = SERVER_NAME,
        extra_args: tuple[str, ...] = (),
        rate_limits: bool = False,
        federation: bool = False,
    ) -> Homeserver:
        """Start a server; pass the `data_dir` of an earlier server to reuse its storage."""
        root = self.tmp_path_factory.mktemp("hs")
        server = Homeserver(
            binary=default_binary(),
            data_dir=data_dir or root / "data",
            log_path=root / "eltrix.log",
            shards=shards,
            registration=registration,
            registration_token=registration_token,
            server_name=server_name,
            extra_args=list(extra_args),
            rate_limits=rate_limits,
            federation=federation,
        )
        self.servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@dataclass
class Account:
    """A logged-in device: every request carries its access token."""

    hs: Homeserver
    user_id: str
    access_token: str
    device_id: str
    password: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.hs.request(method, path, token=self.access_token, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request(
            "POST", path, json_body=body if body is not None else {}, **kwargs
        )

    def put(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request(
            "PUT", path, json_body=body if body is not None else {}, **kwargs
        )

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- Rooms ----------------------------------------------------------------

    def create_room(self, **body) -> str:
        room_id = expect_ok(self.post("createRoom", body))["room_id"]
        return room_id

    def create_room_on_shard(self, shard: int, **body) -> str:
        """Create rooms until one has an ID owned by `shard`; return that room's ID.

        Room IDs are hashes, so each attempt lands on a given shard with
        probability 1/shards. The rooms created on the way stay joined.
        """
        for _attempt in range(16 * self.hs.shards):
            room_id = self.create_room(**body)
            if shard_of(room_id, self.hs.shards) == shard:
                return room_id
        raise AssertionError(
            f"no created room landed on shard {shard} of {self.hs.shards}"
        )

    def join(self, room_id_or_alias: str) -> str:
        return expect_ok(self.post(f"join/{q(room_id_or_alias)}"))["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        expect_ok(self.post(f"rooms/{q(room_id)}/invite", {"user_id": user_id}))

    def leave(self, room_id: str) -> None:
        expect_ok(self.post(f"rooms/{q(room_id)}/leave"))

    def send_event(
        self,
        room_id: str,
        event_type: str,
        content: dict,
        txn_id: str | None = None,
        *,
        v12_id: bool = True,
    ) -> str:
        """Send an event; `v12_id=False` for rooms whose version has another event ID format."""
        txn_id = txn_id or unique("txn")
        path = f"rooms/{q(room_id)}/send/{q(event_type)}/{q(txn_id)}"
        event_id = expect_ok(self.put(path, content))["event_id"]
        if v12_id:
            assert EVENT_ID_V12.match(event_id), (
                f"send returned a malformed event_id {event_id!r}"
            )
        return event_id

    def send_message(self, room_id: str, body: str, txn_id: str | None = None) -> str:
        return self.send_event(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, txn_id
        )

    def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict
    ) -> str:
        path = f"rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"
        return expect_ok(self.put(path, content))["event_id"]

    def state_content(self, room_id: str, event_type: str, state_key: str = "") -> dict:
        return expect_ok(
            self.get(f"rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")
        )

    def event(self, room_id: str, event_id: str) -> dict:
        return expect_ok(self.get(f"rooms/{q(room_id)}/event/{q(event_id)}"))

    def joined_rooms(self) -> set[str]:
        return set(expect_ok(self.get("joined_rooms"))["joined_rooms"])

    def joined_members(self, room_id: str) -> set[str]:
        return set(expect_ok(self.get(f"rooms/{q(room_id)}/joined_members"))["joined"])

    def membership(self, room_id: str, user_id: str) -> str:
        return self.state_content(room_id, "m.room.member", user_id)["membership"]

    def messages(self, room_id: str, **params) -> dict:
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        return expect_ok(self.get(f"rooms/{q(room_id)}/messages", params=params))

    def paginate(
        self,
        room_id: str,
        direction: str,
        start: str | None = None,
        limit: int = 10,
        max_pages: int = 200,
        **params,
    ) -> list[dict]:
        """Follow /messages `end` tokens until the server omits `end`; return every chunk joined."""
        events: list[dict] = []
        token = start
        for _page in range(max_pages):
            page_params = {"dir": direction, "limit": limit, **params}
            if token is not None:
                page_params["from"] = token
            page = self.messages(room_id, **page_params)
            events.extend(page["chunk"])
            if "end" not in page:
                return events
            token = page["end"]
        raise AssertionError(
            f"/messages still returned an end token after {max_pages} pages"
        )

    # -- Sync -----------------------------------------------------------------

    def sync_response(self, **params) -> requests.Response:
        """GET /sync; `timeout` is the sync long-poll time in milliseconds, as on the wire."""
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        http_timeout = HTTP_TIMEOUT + int(params.get("timeout", 0)) / 1000
        return self.get("sync", params=params, timeout=http_timeout)

    def sync(self, **params) -> dict:
        return expect_ok(self.sync_response(**params))

    def sync_until(
        self,
        predicate: Callable[[dict], bool],
        *,
        since: str | None = None,
        deadline: float = SYNC_DEADLINE,
        **params,
    ) -> list[dict]:
        """Long-poll /sync from `since` until `predicate` holds for a response.

        Returns every response in order, the last one being the one that matched.
        Each long-poll waits at most two seconds, so the whole call ends within
        about `deadline` seconds.
        """
        responses: list[dict] = []
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            poll = dict(params)
            if since is not None:
                poll["since"] = since
                poll.setdefault("timeout", 2000)
            body = self.sync(**poll)
            responses.append(body)
            if predicate(body):
                return responses
            since = body["next_batch"]
        raise AssertionError(
            f"/sync for {self.user_id} did not show the expected data within {deadline} s"
        )

    def initial_sync_until(
        self,
        predicate: Callable[[dict], bool],
        *,
        deadline: float = SYNC_DEADLINE,
        **params,
    ) -> dict:
        """Repeat an initial /sync (no `since`) until `predicate` holds; return that response."""
        end = time.monotonic() + deadline
        while True:
            body = self.sync(**params)
            if predicate(body):
                return body
            if time.monotonic() > end:
                raise AssertionError(
                    f"initial /sync for {self.user_id} did not show the expected data within {deadline} s"
                )
            time.sleep(0.2)

    def sync_timeline(
        self, room_id: str, since: str, until_event_id: str, **params
    ) -> tuple[list[dict], str]:
        """Collect the room's timeline events from incremental syncs until `until_event_id` arrives.

        Returns the events in arrival order and the last next_batch token.
        """
        params.setdefault("filter", WIDE_TIMELINE)
        responses = self.sync_until(
            lambda body: until_event_id in event_ids(joined_timeline(body, room_id)),
            since=since,
            **params,
        )
        events = [
            event for body in responses for event in joined_timeline(body, room_id)
        ]
        return events, responses[-1]["next_batch"]


# ---------------------------------------------------------------------------
# Sync response accessors


def joined_room(body: dict, room_id: str) -> dict:
    return body.get("rooms", {}).get("join", {}).get(room_id, {})


def joined_timeline(body: dict, room_id: str) -> list[dict]:
    return joined_room(body, room_id).get("timeline", {}).get("events", [])


def joined_state(body: dict, room_id: str) -> list[dict]:
    return joined_room(body, room_id).get("state", {}).get("events", [])


def shows_event(room_id: str, event_id: str) -> Callable[[dict], bool]:
    """Build a sync predicate: the joined room's timeline contains `event_id`."""
    return lambda body: event_id in event_ids(joined_timeline(body, room_id))
