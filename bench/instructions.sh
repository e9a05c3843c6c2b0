#!/usr/bin/env bash
# Deterministic instruction counts for the most important hot paths.
#
# Runs eltrix-bench under callgrind once per benchmark with a fixed number of
# iterations and prints instructions per iteration. Counts, unlike
# timings, repeat exactly for the same binary and input however busy the
# machine is, so a regression shows up even on a noisy machine.
#
# Usage: bench/instructions.sh [ITERATIONS]   (default 200)
set -euo pipefail

cd "$(dirname "$0")/.."
iterations="${1:-200}"

if ! command -v valgrind >/dev/null; then
    echo "valgrind is missing; install it with: apt-get install valgrind" >&2
    exit 1
fi
cargo build --release -p bench --quiet
binary=target/release/eltrix-bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

count() {
    local iterations="$1" only="$2" file="$out/callgrind.$3.$1"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$binary" --iterations "$iterations" --warmup 0 --only "$only" >/dev/null 2>&1
    # The "summary:" line is the total instruction count of the run.
    awk '/^summary:/ { print $2 }' "$file"
}

printf '%-36s %16s\n' "benchmark" "instructions/op"
for only in "serde_json parse PDU" "hash, sign, reference hash (v12)" "shard_of"; do
    tag="$(echo "$only" | tr -c 'a-z0-9' '_')"
    # The difference between two run lengths cancels start-up and fixture
    # costs, leaving the cost of the extra iterations alone.
    short="$(count "$iterations" "$only" "$tag")"
    long="$(count "$((iterations * 2))" "$only" "$tag")"
    per_op=$(( (long - short) / iterations ))
    if [ "$only" = "shard_of" ]; then
        # One shard_of iteration hashes 1000 IDs.
        per_op=$(( per_op / 1000 ))
    fi
    printf '%-36s %16d\n' "$only" "$per_op"
done
