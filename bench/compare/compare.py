"""Helpers for run.sh: free ports, readiness checks, Synapse config, results.

Every subcommand except `synapse-config` uses only the standard library, so
the system python3 can run it. `synapse-config` needs PyYAML, which the
Synapse virtualenv contains.
"""

import argparse
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Rate that no benchmark here reaches: 1e6 per second with a burst of 1e6.
UNLIMITED = {"per_second": 1_000_000, "burst_count": 1_000_000}

# Rate limiters that Synapse 1.163.2 reads (synapse/config/ratelimiting.py).
# The nested ones are read as "parent.child". rc_federation has another
# format and is left alone, because the benchmark never federates.
FLAT_RATE_LIMITS = [
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_admin_redaction",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
]
NESTED_RATE_LIMITS = {
    "rc_login": ["address", "account", "failed_attempts"],
    "rc_joins": ["local", "remote"],
    "rc_invites": ["per_room", "per_user", "per_issuer"],
    "rc_presence": ["per_user"],
}

TARGET_LABELS = {
    "eltrix": "Eltrix",
    "synapse-sqlite": "Synapse (SQLite)",
    "synapse-postgres": "Synapse (PostgreSQL)",
}


def free_port(_args: argparse.Namespace) -> None:
    """Print a TCP port on 127.0.0.1 that is free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])


def wait_http(args: argparse.Namespace) -> None:
    """Poll a URL until it returns HTTP 200, and exit 1 on timeout."""
    deadline = time.monotonic() + args.timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(args.url, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.2)
    sys.exit(f"error: {args.url} did not return HTTP 200 within {args.timeout} s: {last_error}")


def synapse_config(args: argparse.Namespace) -> None:
    """Rewrite a generated homeserver.yaml and its log config for the benchmark."""
    import yaml  # PyYAML comes with Synapse, and only this subcommand needs it.

    path = Path(args.config)
    config = yaml.safe_load(path.read_text())

    config["listeners"] = [
        {
            "port": args.port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client"], "compress": False}],
        }
    ]
    config["trusted_key_servers"] = []
    config["suppress_key_server_warning"] = True
    config["enable_registration"] = True
    config["enable_registration_without_verification"] = True
    config["report_stats"] = False
    config["presence"] = {"enabled": False}

    for key in FLAT_RATE_LIMITS:
        config[key] = dict(UNLIMITED)
    for key, children in NESTED_RATE_LIMITS.items():
        config[key] = {child: dict(UNLIMITED) for child in children}

    if args.database == "postgres":
        config["database"] = {
            "name": "psycopg2",
            "args": {
                "user": args.pg_user,
                "dbname": args.pg_database,
                "host": args.pg_host,
                "port": args.pg_port,
                "cp_min": 5,
                "cp_max": 10,
            },
        }
    else:
        config["database"] = {"name": "sqlite3", "args": {"database": args.sqlite_path}}

    path.write_text(yaml.safe_dump(config, sort_keys=False))
    set_log_level(Path(config["log_config"]), args.log_level)


def set_log_level(path: Path, level: str) -> None:
    """Set the root and every named logger of a Synapse log config to `level`."""
    import yaml

    log_config = yaml.safe_load(path.read_text())
    log_config["root"]["level"] = level
    for logger in (log_config.get("loggers") or {}).values():
        logger["level"] = level
    path.write_text(yaml.safe_dump(log_config, sort_keys=False))


def read_text(path: Path) -> str | None:
    """Return the stripped text of a file, or None when it does not exist."""
    return path.read_text().strip() if path.exists() else None


def find_latency(report: dict) -> dict | None:
    """Return the latency percentiles of a loadtest report.

    The `send` report keeps them under "latency". Other scenarios may nest
    them deeper, so the first dict with a "p50_ms" key is taken.
    """
    pending = [report]
    while pending:
        value = pending.pop(0)
        if isinstance(value, dict):
            if "p50_ms" in value:
                return value
            pending.extend(value.values())
    return None


def find_throughput(report: dict) -> float | None:
    """Return `throughput_per_s`, else the first top-level number named `*_per_s`."""
    if isinstance(report.get("throughput_per_s"), (int, float)):
        return report["throughput_per_s"]
    for key, value in report.items():
        if key.endswith("_per_s") and isinstance(value, (int, float)):
            return value
    return None


def last_error_line(log: Path) -> str | None:
    """Return the last line of a loadtest log that starts with "error", else its last line."""
    if not log.exists():
        return None
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else None


def load_run(raw: Path, target: str, scenario: str) -> dict:
    """Collect the files that run.sh wrote for one scenario run."""
    stem = raw / f"{target}.{scenario}"
    run = {
        "target": target,
        "scenario": scenario,
        "command": read_text(stem.with_suffix(stem.suffix + ".cmd")),
        "exit_code": None,
        "wall_s": None,
        "report": None,
        "log": str(stem.with_suffix(stem.suffix + ".log")),
    }
    exit_code = read_text(stem.with_suffix(stem.suffix + ".rc"))
    if exit_code is not None:
        run["exit_code"] = int(exit_code)
    wall = read_text(stem.with_suffix(stem.suffix + ".wall"))
    if wall is not None:
        run["wall_s"] = float(wall)
    if run["exit_code"] != 0:
        run["error"] = last_error_line(Path(run["log"]))
    report_path = stem.with_suffix(stem.suffix + ".json")
    if report_path.exists():
        try:
            run["report"] = json.loads(report_path.read_text())
        except json.JSONDecodeError as error:
            run["report_error"] = f"invalid JSON in {report_path}: {error}"
    return run


def load_results(out: Path) -> dict:
    """Build the results document from the files under OUT/raw."""
    raw = out / "raw"
    meta = {path.stem: path.read_text().strip() for path in sorted((raw / "meta").glob("*.txt"))}
    targets = meta.get("targets", "").split()
    scenarios = meta.get("scenarios", "").split()

    target_info = {}
    for target in targets:
        target_info[target] = {
            "label": TARGET_LABELS.get(target, target),
            "status": read_text(raw / f"{target}.status") or "not run",
            "server_command": read_text(raw / f"{target}.server.cmd"),
            "server_peak_rss_kib": read_text(raw / f"{target}.peak-rss-kib"),
        }

    runs = [
        load_run(raw, target, scenario)
        for target in targets
        for scenario in scenarios
        if (raw / f"{target}.{scenario}.cmd").exists()
    ]
    return {"meta": meta, "targets": target_info, "runs": runs}


def format_number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def summarize_run(run: dict) -> dict:
    """Extract the numbers that the table shows from one run."""
    report = run.get("report") or {}
    latency = find_latency(report) or {}
    return {
        "throughput": find_throughput(report),
        "p50": latency.get("p50_ms"),
        "p99": latency.get("p99_ms"),
        "succeeded": report.get("succeeded"),
        "failed": report.get("failed"),
        "stopped_by": report.get("stopped_by"),
    }


def format_table(results: dict) -> str:
    """Format the Markdown table: one row per scenario and target.

    The ratio columns divide Eltrix's number by the row's target's number.
    A throughput ratio above 1 and a latency ratio below 1 favour Eltrix.
    """
    lines = [
        "| scenario | target | throughput (/s) | p50 (ms) | p99 (ms) | ok / failed | stopped by "
        "| throughput Eltrix/target | p50 Eltrix/target | p99 Eltrix/target |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    by_key = {(run["target"], run["scenario"]): run for run in results["runs"]}
    scenarios = results["meta"].get("scenarios", "").split()
    for scenario in scenarios:
        eltrix_run = by_key.get(("eltrix", scenario))
        eltrix = summarize_run(eltrix_run) if eltrix_run else None
        for target, info in results["targets"].items():
            run = by_key.get((target, scenario))
            if run is None:
                lines.append(f"| {scenario} | {info['label']} | not run | | | | | | | |")
                continue
            row = summarize_run(run)
            if run["report"] is None:
                status = f"failed (exit {run['exit_code']})"
                lines.append(f"| {scenario} | {info['label']} | {status} | | | | | | | |")
                continue
            ok_failed = f"{row['succeeded']} / {row['failed']}"
            if target == "eltrix" or eltrix is None:
                ratios = ["", "", ""]
            else:
                ratios = [
                    format_ratio(eltrix["throughput"], row["throughput"]),
                    format_ratio(eltrix["p50"], row["p50"]),
                    format_ratio(eltrix["p99"], row["p99"]),
                ]
            cells = [
                scenario,
                info["label"],
                format_number(row["throughput"], 1),
                format_number(row["p50"], 2),
                format_number(row["p99"], 2),
                ok_failed,
                row["stopped_by"] or "",
                *ratios,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(results: dict) -> str:
    """Format the Markdown summary: table, versions, machine and commands."""
    meta = results["meta"]
    parts = [
        "# Eltrix vs Synapse",
        "",
        f"Date: {meta.get('date', 'unknown')}. Harness: `{meta.get('harness_command', '')}`.",
        "",
        format_table(results),
        "",
        "Throughput counts successful requests per second of the measured phase.",
        "Latency is that of successful requests.",
        "",
        "## Versions",
        "",
        f"- Eltrix: {meta.get('eltrix_version', 'unknown')} "
        f"(commit {meta.get('git_commit', 'unknown')})",
        f"- eltrix-loadtest: {meta.get('loadtest_version', 'unknown')}",
        f"- Synapse: {meta.get('synapse_version', 'unknown')} "
        f"(Python {meta.get('python_version', 'unknown')})",
        f"- PostgreSQL: {meta.get('postgres_version', 'unknown')}",
        "",
        "## Machine",
        "",
        f"- CPU: {meta.get('cpu_model', 'unknown')}, {meta.get('nproc', '?')} cores (nproc)",
        f"- Memory: {meta.get('memory', 'unknown')}",
        f"- Kernel: {meta.get('kernel', 'unknown')}",
        "",
        f"Mode: {meta.get('mode', 'unknown')} ({meta.get('sizes', '')}), "
        f"Eltrix shards: {meta.get('shards', '?')}, seed: {meta.get('seed', '?')}, "
        f"total time: {meta.get('total_seconds', '?')} s.",
        "",
        "## Servers",
        "",
    ]
    for target, info in results["targets"].items():
        rss = info["server_peak_rss_kib"]
        rss_text = f", peak RSS {int(rss) // 1024} MiB" if rss and rss.isdigit() else ""
        parts.append(f"- {info['label']}: {info['status']}{rss_text}")
        if info["server_command"]:
            parts.append(f"  - `{info['server_command']}`")
    failed = [run for run in results["runs"] if run["exit_code"] != 0]
    if failed:
        parts += ["", "## Failures", ""]
        for run in failed:
            parts.append(
                f"- {run['target']} {run['scenario']} (exit {run['exit_code']}): "
                f"{run.get('error') or 'no output'}"
            )
    parts += ["", "## Commands", ""]
    for run in results["runs"]:
        wall = format_number(run["wall_s"], 1)
        parts.append(
            f"- {run['target']} {run['scenario']} (exit {run['exit_code']}, {wall} s): "
            f"`{run['command']}`"
        )
    return "\n".join(parts) + "\n"


def summarize(args: argparse.Namespace) -> None:
    """Write OUT/results.json and OUT/summary.md, and print the summary."""
    out = Path(args.out)
    results = load_results(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = format_summary(results)
    (out / "summary.md").write_text(summary)
    print(summary, end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("free-port", help="print a free TCP port on 127.0.0.1")

    wait = commands.add_parser("wait-http", help="wait until a URL returns HTTP 200")
    wait.add_argument("url")
    wait.add_argument("--timeout", type=float, default=60, help="seconds to wait")

    synapse = commands.add_parser("synapse-config", help="edit a generated homeserver.yaml")
    synapse.add_argument("--config", required=True, help="path of homeserver.yaml")
    synapse.add_argument("--port", type=int, required=True, help="HTTP port on 127.0.0.1")
    synapse.add_argument("--database", choices=["sqlite", "postgres"], required=True)
    synapse.add_argument("--sqlite-path", help="SQLite database file")
    synapse.add_argument("--pg-host", help="PostgreSQL host or unix socket directory")
    synapse.add_argument("--pg-port", type=int, default=5432)
    synapse.add_argument("--pg-user", default="postgres")
    synapse.add_argument("--pg-database", default="synapse")
    synapse.add_argument("--log-level", default="WARNING", help="Python logging level")

    summary = commands.add_parser("summarize", help="write results.json and summary.md")
    summary.add_argument("--out", required=True, help="output directory of run.sh")

    args = parser.parse_args()
    handlers = {
        "free-port": free_port,
        "wait-http": wait_http,
        "synapse-config": synapse_config,
        "summarize": summarize,
    }
    handlers[args.command](args)


if __name__ == "__main__":
    main()
