#!/usr/bin/env bash
# Build the workspace, run its Rust tests, then the black-box tests against the
# release binary. Exits with the status of the first step that fails.
set -euo pipefail

cd "$(dirname "$0")/.."

cargo build --release --workspace
cargo test --release --workspace

export ELTRIX_BIN="${ELTRIX_BIN:-$PWD/target/release/eltrix}"
python="${PYTHON:-python3}"
"$python" -m pytest -q -p no:cacheprovider tests/
