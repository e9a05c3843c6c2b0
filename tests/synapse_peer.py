"""Run a real Synapse homeserver on 127.0.0.1 as a federation peer for black-box tests.

`ensure_synapse()` installs matrix-synapse from PyPI into a cached virtualenv,
`start_synapse()` configures and starts one Synapse on a TLS listener, and
`synapse_peer()` wraps both for a module-scoped fixture:

    @pytest.fixture(scope="module")
    def synapse(tmp_path_factory, hs):
        with synapse_peer(tmp_path_factory, peer_server_names=[hs.server_name]) as peer:
            yield peer

Synapse sends federation traffic to, and accepts it from, only its own server
name and those in `peer_server_names`, so list every Eltrix server it must
talk to.

NOTE: the peer listens on 127.0.0.1 only, but its server name is
`localhost:<port>`. A client that resolves localhost to ::1 first must fall
back to 127.0.0.1 to reach it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from signedjson.key import generate_signing_key, write_signing_keys
from signedjson.types import SigningKey

from harness import HTTP_TIMEOUT, client_path, expect_ok, free_port

# Pinned matrix-synapse release, the newest on PyPI when the pin was set. The
# config key names below were checked against its source.
SYNAPSE_VERSION = "1.163.2"

# Seconds. A fresh install of 1.163.2 downloads about 60 packages.
INSTALL_TIMEOUT = 1200
START_TIMEOUT = 60
STOP_TIMEOUT = 10
START_ATTEMPTS = 3

# Text of EADDRINUSE, which Synapse logs when another process took the
# listener port between free_port() and Synapse binding it.
PORT_IN_USE = "Address already in use"

# A rate that no test reaches, for every `per_second`/`burst_count` limiter.
UNLIMITED_RATE = {"per_second": 100_000, "burst_count": 100_000}

# Rate limiters that Synapse 1.163 reads as `per_second`/`burst_count` pairs
# (synapse/config/ratelimiting.py). A dotted name is a nested key.
RATE_LIMITERS = [
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
]

# rc_federation counts the requests from each remote server in a window of
# `window_size` ms. Requests beyond `sleep_limit` wait `sleep_delay` ms, those
# beyond `reject_limit` are rejected, and at most `concurrent` run at once.
UNLIMITED_FEDERATION = {
    "window_size": 1000,
    "sleep_limit": 100_000,
    "sleep_delay": 0,
    "reject_limit": 100_000,
    "concurrent": 1000,
}

# Every peer started and not yet stopped, so that an interpreter exit without
# fixture teardown still stops them.
RUNNING_PEERS: set[SynapsePeer] = set()


def synapse_venv_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "eltrix-tests" / "synapse-venv"


@functools.cache
def ensure_synapse() -> Path:
    """Install matrix-synapse into the cached virtualenv unless it is there.

    Returns the virtualenv's python. The virtualenv is recreated when its
    interpreter or pip is missing, and Synapse is reinstalled when it is missing
    or not SYNAPSE_VERSION. A lock file keeps concurrent test runs from
    installing at the same time.
    """
    venv = synapse_venv_dir()
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)

    with open(venv.parent / "synapse-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(python) == SYNAPSE_VERSION:
            return python

        if not (python.exists() and (venv / "bin" / "pip").exists()):
            create_venv(venv)
        run_install_step(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"matrix-synapse=={SYNAPSE_VERSION}",
            ],
            f"pip install matrix-synapse=={SYNAPSE_VERSION} into {venv}",
            hint=f"check access to PyPI, or delete {venv} to reinstall from scratch",
        )

        version = installed_version(python)
        if version != SYNAPSE_VERSION:
            raise RuntimeError(
                f"matrix-synapse {SYNAPSE_VERSION} is still missing from {python} "
                f"after pip install (found version {version!r}). Delete {venv} and "
                "rerun."
            )
    return python


def installed_version(python: Path) -> str | None:
    """Return the matrix-synapse version that pip recorded for `python`, or None."""
    if not python.exists():
        return None
    result = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('matrix-synapse'))",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def create_venv(venv: Path) -> None:
    base_python = shutil.which("python3") or sys.executable
    shutil.rmtree(venv, ignore_errors=True)
    run_install_step(
        [base_python, "-m", "venv", str(venv)],
        f"{base_python} -m venv {venv}",
        hint="on Debian and Ubuntu, install the python3-venv package",
    )


def run_install_step(command: list[str], description: str, hint: str = "") -> None:
    try:
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"{description} timed out after {INSTALL_TIMEOUT} s"
        ) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        advice = f" ({hint})" if hint else ""
        raise RuntimeError(
            f"{description} failed with exit code {result.returncode}{advice}:"
            f"\n{output}"
        )


# ---------------------------------------------------------------------------
# Config files


def require_openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "the openssl command is not on PATH, and the Synapse peer needs it to "
            "make its TLS certificate. Install OpenSSL (on Debian and Ubuntu: "
            "apt-get install openssl)"
        )
    return openssl


def write_tls_certificate(workdir: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and key for localhost, 127.0.0.1 and ::1.

    Returns the paths of the certificate and of the key.
    """
    cert_path = workdir / "tls.crt"
    key_path = workdir / "tls.key"
    command = [
        require_openssl(),
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        "-keyout",
        str(key_path),
        "-out",
        str(cert_path),
    ]
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl failed with exit code {result.returncode} while making the "
            f"Synapse TLS certificate: {result.stderr.strip()}"
        )
    return cert_path, key_path


def write_signing_key(path: Path) -> SigningKey:
    """Generate an ed25519 signing key and write it in the format Synapse reads."""
    signing_key = generate_signing_key("a_" + secrets.token_hex(3))
    with open(path, "w") as key_file:
        write_signing_keys(key_file, [signing_key])
    return signing_key


def rate_limit_config() -> dict[str, Any]:
    config: dict[str, Any] = {"rc_federation": dict(UNLIMITED_FEDERATION)}
    for name in RATE_LIMITERS:
        section = config
        *parents, leaf = name.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = dict(UNLIMITED_RATE)
    return config


def log_config(log_path: Path) -> dict[str, Any]:
    """Build a logging.config.dictConfig schema that logs INFO and above to `log_path`.

    Synapse sets the `request` attribute of every record, which names the
    request that logged it.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "%(asctime)s %(levelname)s %(name)s [%(request)s] %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_path),
                "formatter": "plain",
                "encoding": "utf-8",
            }
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }


def homeserver_config(
    workdir: Path,
    port: int,
    peer_server_names: list[str],
    *,
    tls_files: tuple[Path, Path],
    signing_key_path: Path,
    log_config_path: Path,
) -> dict[str, Any]:
    """Build the homeserver.yaml settings of a peer named `localhost:<port>`."""
    server_name = f"localhost:{port}"
    cert_path, key_path = tls_files
    return {
        "server_name": server_name,
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ],
        "tls_certificate_path": str(cert_path),
        "tls_private_key_path": str(key_path),
        "database": {
            "name": "sqlite3",
            "args": {"database": str(workdir / "homeserver.db")},
        },
        "media_store_path": str(workdir / "media_store"),
        "log_config": str(log_config_path),
        "signing_key_path": str(signing_key_path),
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "report_stats": False,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        # Peers listen on loopback, which Synapse blocks for outgoing
        # federation by default, and present self-signed certificates.
        "federation_verify_certificates": False,
        "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
        "federation_domain_whitelist": [server_name, *peer_server_names],
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        **rate_limit_config(),
    }


def write_json(path: Path, value: Any) -> None:
    # JSON is a subset of YAML, so Synapse reads these files as YAML.
    path.write_text(json.dumps(value, indent=2) + "\n")


# ---------------------------------------------------------------------------
# Server process


class SynapsePeer:
    """A running Synapse named `localhost:<port>`, served over TLS on 127.0.0.1.

    `request()` and `client_request()` trust exactly the peer's self-signed
    certificate, so they verify it without a CA and without the warning that
    urllib3 prints for unverified requests.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        port: int,
        process: subprocess.Popen,
        signing_key: SigningKey,
        cert_path: Path,
    ):
        self.workdir = workdir
        self.port = port
        self.process = process
        self.signing_key = signing_key
        self.cert_path = cert_path
        self.log_path = workdir / "homeserver.log"
        self.stdio_path = workdir / "synapse.stdio.log"
        self.session = requests.Session()

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def verify_key_id(self) -> str:
        """Key ID (`ed25519:<version>`) under which Synapse publishes `signing_key`."""
        return f"{self.signing_key.alg}:{self.signing_key.version}"

    # -- HTTP ---------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request to `base_url + path`, passing `kwargs` to requests."""
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        # Passed on each request because requests lets REQUESTS_CA_BUNDLE and
        # CURL_CA_BUNDLE override Session.verify, but not a per-request value.
        kwargs.setdefault("verify", str(self.cert_path))
        return self.session.request(method, self.base_url + path, **kwargs)

    def client_request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a Client-Server API request, with `token` as its bearer token if given.

        `path` is relative to /_matrix/client/v3 unless it starts with `/`.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.request(
            method, client_path(path), json=json, headers=headers, **kwargs
        )

    def register(self, localpart: str, password: str) -> tuple[str, str]:
        """Register a user through the m.login.dummy stage.

        Returns the user ID and the access token of the new device.
        """
        body = {"username": localpart, "password": password, "inhibit_login": False}
        challenge = expect_ok(
            self.client_request("POST", "register", json=body), status=401
        )
        auth = {"type": "m.login.dummy", "session": challenge["session"]}
        created = expect_ok(
            self.client_request("POST", "register", json={**body, "auth": auth})
        )
        return created["user_id"], created["access_token"]

    # -- Process ------------------------------------------------------------

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll /_matrix/client/versions until it returns 200.

        Raises SynapseStartError if Synapse exits first or `timeout` seconds pass.
        """
        url = f"{self.base_url}/_matrix/client/versions"
        deadline = time.monotonic() + timeout
        last_error = "no response yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SynapseStartError(
                    f"Synapse exited with status {self.process.returncode} before "
                    f"{url} responded",
                    self,
                )
            try:
                response = self.request("GET", "/_matrix/client/versions", timeout=2)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except (requests.ConnectionError, requests.Timeout) as error:
                last_error = f"{type(error).__name__}: {error}"
            time.sleep(0.2)
        raise SynapseStartError(
            f"Synapse did not return HTTP 200 on {url} within {timeout} s "
            f"(last result: {last_error})",
            self,
        )

    def stop(self) -> int | None:
        """Stop Synapse unless it has exited, and return its exit status.

        Calling it again only returns the status. Sends SIGTERM to the process
        group that Synapse leads, then SIGKILL if Synapse is still running
        STOP_TIMEOUT seconds later.
        """
        RUNNING_PEERS.discard(self)
        self.session.close()
        # poll() reaps the process once it exits. Until then its PID, which is
        # also its process group ID, cannot be reused, so the signals reach
        # only this Synapse.
        if self.process.poll() is not None:
            return self.process.returncode
        self.signal_group(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            return self.process.wait(timeout=STOP_TIMEOUT)

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass  # The whole group exited after the last poll().

    def log_tail(self, max_chars: int = 8000) -> str:
        """Return the end of Synapse's log file and of its stdout and stderr."""
        sections = []
        for path in (self.log_path, self.stdio_path):
            text = path.read_text(errors="replace") if path.exists() else "(no file)"
            sections.append(f"--- {path} ---\n{text[-max_chars:]}")
        return "\n".join(sections)


class SynapseStartError(RuntimeError):
    """Failure to start Synapse. The message ends with the tail of its logs."""

    def __init__(self, reason: str, peer: SynapsePeer):
        self.log_tail = peer.log_tail()
        super().__init__(f"{reason}\n{self.log_tail}")


def start_synapse(
    workdir: Path,
    port: int,
    peer_server_names: list[str],
    extra_config: dict[str, Any] | None = None,
    start_timeout: float = START_TIMEOUT,
) -> SynapsePeer:
    """Configure Synapse in `workdir`, start it on 127.0.0.1:`port` and wait for it.

    Synapse federates only with its own name and `peer_server_names`.
    `extra_config` entries replace top-level homeserver.yaml keys. Raises
    SynapseStartError, with the log tail, if Synapse does not come up.
    """
    python = ensure_synapse()
    workdir.mkdir(parents=True, exist_ok=True)
    tls_files = write_tls_certificate(workdir)
    signing_key_path = workdir / "signing.key"
    signing_key = write_signing_key(signing_key_path)
    log_config_path = workdir / "log_config.yaml"
    write_json(log_config_path, log_config(workdir / "homeserver.log"))

    config = homeserver_config(
        workdir,
        port,
        peer_server_names,
        tls_files=tls_files,
        signing_key_path=signing_key_path,
        log_config_path=log_config_path,
    )
    config.update(extra_config or {})
    config_path = workdir / "homeserver.yaml"
    write_json(config_path, config)

    command = [
        str(python),
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(config_path),
    ]
    with open(workdir / "synapse.stdio.log", "ab") as stdio:
        # A new session makes Synapse the leader of its own process group, so
        # stop() can signal the group and a Ctrl-C in the terminal reaches
        # only pytest, whose teardown then stops Synapse.
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdio,
            stderr=stdio,
            start_new_session=True,
        )
    peer = SynapsePeer(workdir, port, process, signing_key, tls_files[0])
    RUNNING_PEERS.add(peer)
    try:
        peer.wait_ready(start_timeout)
    except BaseException:
        peer.stop()
        raise
    return peer


@contextlib.contextmanager
def synapse_peer(
    tmp_path_factory: pytest.TempPathFactory,
    peer_server_names: list[str] | tuple[str, ...] = (),
    extra_config: dict[str, Any] | None = None,
) -> Iterator[SynapsePeer]:
    """Start one Synapse on a free port in a fresh temporary directory.

    Synapse stops when the `with` block exits. free_port() cannot reserve the
    port, so when another process binds it first, the start is retried on a new
    port, up to START_ATTEMPTS times.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        workdir = tmp_path_factory.mktemp("synapse")
        try:
            peer = start_synapse(
                workdir, free_port(), list(peer_server_names), extra_config
            )
            break
        except SynapseStartError as error:
            if attempt == START_ATTEMPTS or PORT_IN_USE not in error.log_tail:
                raise
    try:
        yield peer
    finally:
        peer.stop()


@atexit.register
def stop_running_peers() -> None:
    for peer in list(RUNNING_PEERS):
        peer.stop()
