"""Measure the time from starting Eltrix on an empty data directory to its
first 200 on /health, over several runs. Usage:

    python3 bench/scripts/startup_time.py --binary target/release/eltrix --runs 5
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import time
import urllib.request


def one_start(binary: str, port: int) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.monotonic()
        process = subprocess.Popen(
            [binary, "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}", "--log", "warn"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while time.monotonic() - started < 20:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except OSError:
                    time.sleep(0.002)
            raise SystemExit("the server did not return 200 on /health within 20 s")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/eltrix", help="the eltrix binary")
    parser.add_argument("--port", type=int, default=18493, help="loopback port for the server")
    parser.add_argument("--runs", type=int, default=5, help="number of starts")
    args = parser.parse_args()
    times_ms = sorted(round(one_start(args.binary, args.port) * 1000, 1) for _ in range(args.runs))
    print(json.dumps({"runs": args.runs, "startup_ms": times_ms, "median_ms": times_ms[len(times_ms) // 2]}))


if __name__ == "__main__":
    main()
