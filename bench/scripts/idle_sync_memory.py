"""Measure Eltrix's resident memory per idle long-polling /sync client.

Starts the server on a temporary data directory and registers N users, then
restarts it, so that memory left over from password hashing does not blur the
figure. In the fresh process it records the RSS, then for each user runs an
initial /sync and keeps an incremental /sync with a long timeout open on a raw
socket, and reports the RSS growth per client: the connection, the waiting
request, the user's sync index and cached token. Usage:

    python3 bench/scripts/idle_sync_memory.py --binary target/release/eltrix --clients 1000
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def register(base: str, name: str) -> tuple[str, str]:
    body = {"username": name, "password": "idle-sync-pw", "auth": {"type": "m.login.dummy"}}
    created = post(f"{base}/_matrix/client/v3/register", body)
    token = created["access_token"]
    since = get(f"{base}/_matrix/client/v3/sync", token)["next_batch"]
    return token, since


def open_long_poll(host: str, port: int, token: str, since: str) -> socket.socket:
    sock = socket.create_connection((host, port))
    query = urllib.parse.urlencode({"since": since, "timeout": "60000"})
    request = (
        f"GET /_matrix/client/v3/sync?{query} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def start_server(binary: str, data_dir: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [binary, "--shards", "2", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}", "--log", "warn", "--rate-limits", "false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/eltrix", help="the eltrix binary")
    parser.add_argument("--port", type=int, default=18492, help="loopback port for the server")
    parser.add_argument("--clients", type=int, default=1000, help="idle syncing clients to hold open")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"

    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(args.binary, data_dir, args.port)
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                tokens = list(pool.map(lambda i: register(base, f"idle-{i}")[0], range(args.clients)))
        finally:
            stop_server(server)

        server = start_server(args.binary, data_dir, args.port)
        try:
            time.sleep(1)
            before = rss_kib(server.pid)
            sockets = []
            for token in tokens:
                since = get(f"{base}/_matrix/client/v3/sync", token)["next_batch"]
                sockets.append(open_long_poll("127.0.0.1", args.port, token, since))
            time.sleep(3)
            after = rss_kib(server.pid)
            per_client = (after - before) / len(tokens)
            print(json.dumps({"clients": len(tokens), "rss_before_kib": before, "rss_after_kib": after,
                              "kib_per_idle_sync_client": round(per_client, 2)}))
            for sock in sockets:
                sock.close()
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
