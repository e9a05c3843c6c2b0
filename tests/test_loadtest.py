"""Run each eltrix-loadtest scenario briefly against a real two-shard server.

The load generator binary is ELTRIX_LOADTEST_BIN, or the release build in
target/ (`cargo build --release -p loadtest`). Every run is small enough to
take a few seconds and writes its report with --json, which the tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import REPO_ROOT

# Seconds. Bounds one load generator run, setup included.
RUN_TIMEOUT = 120


def loadtest_binary() -> Path:
    return Path(
        os.environ.get(
            "ELTRIX_LOADTEST_BIN", REPO_ROOT / "target" / "release" / "eltrix-loadtest"
        )
    )


def run_loadtest(
    tmp_path: Path, scenario: str, url: str, *args: str
) -> subprocess.CompletedProcess:
    """Run one scenario with --json into tmp_path and return the finished process."""
    binary = loadtest_binary()
    if not binary.exists():
        pytest.fail(
            f"load generator {binary} does not exist: build it with "
            "`cargo build --release -p loadtest` or point ELTRIX_LOADTEST_BIN at it"
        )
    command = [
        str(binary),
        scenario,
        "--url",
        url,
        "--json",
        str(tmp_path / f"{scenario}.json"),
        *args,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def report_of(tmp_path: Path, scenario: str, url: str, *args: str) -> dict:
    """Run one scenario, assert that it exited 0, and return its JSON report."""
    proc = run_loadtest(tmp_path, scenario, url, *args)
    assert proc.returncode == 0, (
        f"eltrix-loadtest {scenario} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return json.loads((tmp_path / f"{scenario}.json").read_text())


def assert_clean_run(report: dict) -> None:
    """Assert no failed request and a positive throughput."""
    assert report["failed"] == 0, f"failed requests: {report['errors']}"
    assert report["errors"] == {}
    assert report["succeeded"] == report["requests"]
    assert report["throughput_per_s"] > 0


def assert_sane_latency(report: dict, operation: str) -> dict:
    """Assert ordered percentiles of one operation and return its section."""
    section = report["operations"][operation]
    assert section["failed"] == 0, f"{operation} errors: {section['errors']}"
    assert section["succeeded"] > 0
    assert section["throughput_per_s"] > 0
    latency = section["latency"]
    assert latency["count"] == section["succeeded"]
    assert 0 < latency["p50_ms"], latency
    assert latency["p50_ms"] <= latency["p90_ms"], latency
    assert latency["p90_ms"] <= latency["p99_ms"], latency
    assert latency["p99_ms"] <= latency["p99_9_ms"], latency
    assert latency["p99_9_ms"] <= latency["max_ms"], latency
    return section


def test_send_closed_loop(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(tmp_path, "send", hs.url, "--messages", "200", "--seed", "7")

    assert_clean_run(report)
    assert report["scenario"] == "send"
    assert report["url"] == hs.url
    assert report["seed"] == 7
    assert report["requests"] == 200
    assert report["stopped_by"] == "request_limit"
    assert report["parameters"]["messages"] == 200
    assert report["parameters"]["rate"] is None
    assert "schedule" not in report
    assert len(report["setup"]["room_ids"]) == 2
    send = assert_sane_latency(report, "send")
    assert send["requests"] == 200
    assert report["latency_of"] == "send"
    assert report["latency"] == send["latency"]


def test_send_open_loop_keeps_rate(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(
        tmp_path, "send", hs.url, "--rate", "200", "--messages", "200", "--duration", "20"
    )

    assert_clean_run(report)
    assert report["requests"] == 200
    assert report["schedule"]["rate_per_s"] == 200
    assert report["schedule"]["missed"] == 0
    # The last of 200 sends at 200/s is due after 0.995 s.
    assert report["elapsed_s"] >= 0.99
    assert report["throughput_per_s"] <= 205
    assert_sane_latency(report, "send")


def test_fanout_delivers_every_message(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(
        tmp_path,
        "fanout",
        hs.url,
        "--members",
        "10",
        "--messages",
        "20",
        "--rate",
        "20",
    )

    assert_clean_run(report)
    deliveries = report["deliveries"]
    assert deliveries["messages_sent"] == 20
    assert deliveries["expected"] == 200
    assert deliveries["delivered"] == 200
    assert deliveries["missing"] == 0
    assert deliveries["duplicates"] == 0
    assert deliveries["unmatched"] == 0
    latency = deliveries["latency"]
    assert latency["count"] == 200
    assert latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    from_start = deliveries["latency_from_send_start"]
    assert from_start["p50_ms"] <= from_start["p99_ms"] <= from_start["max_ms"]
    assert report["latency_of"] == "delivery"
    assert report["latency"] == latency
    assert_sane_latency(report, "send")
    assert report["operations"]["initial_sync"]["succeeded"] == 10


def test_initial_sync_sees_all_rooms(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(
        tmp_path,
        "initial-sync",
        hs.url,
        "--users",
        "3",
        "--rooms",
        "5",
        "--messages-per-room",
        "4",
        "--repeats",
        "2",
    )

    # A response without all five rooms would count as a "missing rooms" error.
    assert_clean_run(report)
    assert report["requests"] == 6
    assert report["stopped_by"] == "request_limit"
    assert report["parameters"]["timeline_limit"] == 1
    assert_sane_latency(report, "initial_sync")
    sizes = report["response_bytes"]
    assert sizes["count"] == 6
    assert 0 < sizes["min_bytes"] <= sizes["p50_bytes"] <= sizes["max_bytes"]


def test_mixed_runs_every_operation(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(tmp_path, "mixed", hs.url, "--duration", "2", "--seed", "3")

    assert_clean_run(report)
    assert report["stopped_by"] == "duration_limit"
    assert report["elapsed_s"] < 10
    operations = set(report["operations"])
    assert {"send", "sync", "messages", "join"} <= operations, operations
    for operation in ("send", "sync", "messages", "join"):
        assert_sane_latency(report, operation)
    assert report["latency_of"] == "all operations"
    assert report["latency"]["count"] == report["succeeded"]
    sends = report["operations"]["send"]["requests"]
    syncs = report["operations"]["sync"]["requests"]
    assert sends > syncs, "sends have weight 60 and syncs 25"


def test_mixed_open_loop(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(
        tmp_path, "mixed", hs.url, "--rate", "100", "--requests", "100", "--duration", "20"
    )

    assert_clean_run(report)
    assert report["requests"] == 100
    assert report["schedule"]["missed"] == 0
    assert report["elapsed_s"] >= 0.98


def test_ceiling_reports_throughput(start_server, tmp_path):
    hs = start_server(shards=2)
    report = report_of(tmp_path, "ceiling", hs.url, "--duration", "1")

    assert_clean_run(report)
    assert report["seed"] is None
    assert report["setup"] is None
    assert report["stopped_by"] == "duration_limit"
    versions = assert_sane_latency(report, "versions")
    assert versions["requests"] > 100


def test_state_file_is_reused(start_server, tmp_path):
    hs = start_server(shards=2)
    state = tmp_path / "state.json"
    first = report_of(tmp_path, "send", hs.url, "--messages", "20", "--state", str(state))
    saved = json.loads(state.read_text())
    second = report_of(tmp_path, "send", hs.url, "--messages", "20", "--state", str(state))

    assert first["setup"]["reused_state"] is False
    assert second["setup"]["reused_state"] is True
    assert second["setup"]["room_ids"] == first["setup"]["room_ids"]
    assert saved["rooms"] == first["setup"]["room_ids"]
    assert len(saved["users"]) == 4
    assert set(saved["users"][0]) == {"user_id", "access_token", "device_id"}
    assert_clean_run(second)
    assert json.loads(state.read_text()) == saved, "reuse must not rewrite the state"


def test_state_file_of_other_setup_is_rejected(start_server, tmp_path):
    hs = start_server(shards=2)
    state = tmp_path / "state.json"
    report_of(tmp_path, "send", hs.url, "--messages", "5", "--state", str(state))
    proc = run_loadtest(
        tmp_path, "send", hs.url, "--users", "5", "--messages", "5", "--state", str(state)
    )

    assert proc.returncode == 1, proc.stderr
    assert "cannot reuse" in proc.stderr
    assert "setup options" in proc.stderr


def test_non_loopback_url_is_rejected(tmp_path):
    # The URL check runs before any connection, so this sends nothing.
    proc = run_loadtest(tmp_path, "ceiling", "http://192.0.2.1:8008", "--duration", "1")

    assert proc.returncode == 1, proc.stderr
    assert "--allow-remote" in proc.stderr
