#!/usr/bin/env bash
# The whole test suite: installs the Python test dependencies into a
# virtualenv, checks formatting and clippy lints, builds the workspace, runs
# the Rust tests, then the black-box tests against the release binary. Exits
# with the first failing step's status.
set -euo pipefail

cd "$(dirname "$0")/.."

python="$(command -v python3.11 || command -v python3)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/eltrix-tests"
venv="$cache_dir/venv"

# Debian ships python3 without venv support unless python3-venv is
# installed; fall back to the system pip there.
if [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    mkdir -p "$cache_dir"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        echo "python venv is unavailable; installing test dependencies with the system pip" >&2
        rm -rf "$venv"
    fi
fi
if [ -x "$venv/bin/pip" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    python="$venv/bin/python"
else
    # PEP 668 marks Debian's interpreter as externally managed.
    PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check \
        -r tests/requirements.txt
fi

# The federation tests make self-signed certificates with openssl.
if ! command -v openssl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get install -y --no-install-recommends openssl >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends openssl >/dev/null; }
    else
        echo "openssl is missing and apt-get is unavailable; install openssl" >&2
        exit 1
    fi
fi

# rustup cannot download components on a machine without network access, so
# a toolchain without rustfmt or clippy skips that check and prints why.
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
else
    echo "rustfmt is not installed; skipping the formatting check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --release --workspace --all-targets --quiet -- -D warnings
else
    echo "clippy is not installed; skipping the lint check" >&2
fi
cargo build --release --workspace
cargo test --release --workspace

export ELTRIX_BIN="${ELTRIX_BIN:-$PWD/target/release/eltrix}"
"$python" -m pytest -q -p no:cacheprovider tests/
