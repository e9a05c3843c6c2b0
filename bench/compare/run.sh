#!/usr/bin/env bash
# Benchmarks Eltrix against Synapse on SQLite and Synapse on PostgreSQL with
# eltrix-loadtest. One server runs at a time, each on fresh state, and every
# scenario gets the same seed and parameters. See README.md for usage.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
helper="$script_dir/compare.py"

original_args=("$@")
quick=false
out=""
shards=2
seed=42
eltrix_source="$repo_root/target/release/eltrix"
loadtest_source="$repo_root/target/release/eltrix-loadtest"
synapse_version=1.163.2
all_targets="eltrix synapse-sqlite synapse-postgres"
targets=$all_targets
keep_work=false

# Scenarios in the order they run. Any other scenario that the loadtest
# binary lists runs after these, with the common options only.
expected_scenarios=(send fanout initial-sync mixed ceiling)

usage() {
    cat <<EOF
Usage: $0 [OPTIONS]

Runs every eltrix-loadtest scenario against Eltrix, Synapse on SQLite and
Synapse on PostgreSQL, then writes OUT/results.json and OUT/summary.md and
prints the summary.

Options:
  --quick               tiny runs (a few seconds each), to check the harness
  --out DIR             output directory [default: ./compare-DATE]
  --shards N            Eltrix shard count [default: $shards]
  --seed N              seed passed to every scenario [default: $seed]
  --targets LIST        space- or comma-separated subset of: $all_targets
  --eltrix PATH         Eltrix binary [default: $eltrix_source]
  --loadtest PATH       eltrix-loadtest binary [default: $loadtest_source]
  --synapse-version V   matrix-synapse version to install [default: $synapse_version]
  --keep-work           keep the temporary work directory (data, venv, logs)
  -h, --help            print this help
EOF
}

require_value() {
    if [[ $2 -lt 2 ]]; then
        echo "error: $1 requires a value; see --help" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --out | --shards | --seed | --targets | --eltrix | --loadtest | --synapse-version)
            require_value "$1" $#
            ;;
    esac
    case "$1" in
        --quick) quick=true ;;
        --out) out=$2; shift ;;
        --shards) shards=$2; shift ;;
        --seed) seed=$2; shift ;;
        --targets) targets=${2//,/ }; shift ;;
        --eltrix) eltrix_source=$2; shift ;;
        --loadtest) loadtest_source=$2; shift ;;
        --synapse-version) synapse_version=$2; shift ;;
        --keep-work) keep_work=true ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown option $1; see --help" >&2; exit 2 ;;
    esac
    shift
done

for target in $targets; do
    case "$target" in
        eltrix | synapse-sqlite | synapse-postgres) ;;
        *)
            echo "error: unknown target $target in --targets; expected one of: $all_targets" >&2
            exit 2
            ;;
    esac
done
for binary in "$eltrix_source" "$loadtest_source"; do
    if [[ ! -x $binary ]]; then
        echo "error: $binary is missing or not executable; build it with cargo build --release" >&2
        exit 2
    fi
done

# Sizes. The send phase of each scenario stops at whichever of the request
# count and the duration comes first, so slow targets are bounded in time.
if $quick; then
    users=4 rooms=2 concurrency=4 requests=200 duration=5
    fanout_members=5 fanout_messages=5 sync_users=2 sync_rooms=5
    scenario_time_limit=180
else
    users=64 rooms=64 concurrency=64 requests=40000 duration=30
    fanout_members=200 fanout_messages=30 sync_users=2 sync_rooms=300
    scenario_time_limit=600
fi
ceiling_duration=$(( duration < 10 ? duration : 10 ))

out=${out:-"$PWD/compare-$(date -u +%Y%m%dT%H%M%SZ)"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/raw" "$out/results.json" "$out/summary.md"
raw="$out/raw"
mkdir -p "$raw/meta"

work=$(mktemp -d /tmp/eltrix-compare.XXXXXX)
# Lines of "PID START_TIME NAME" for every process this script starts.
started_pids="$work/started.pids"
touch "$started_pids"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
write_meta() { printf '%s\n' "$2" >"$raw/meta/$1.txt"; }

# Prints the start time of PID in clock ticks since boot (field 22 of
# /proc/PID/stat), or nothing when PID is gone or a zombie.
process_start_time() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # Drop "PID (COMM) " first, because COMM may contain spaces.
    read -r -a fields <<<"${stat##*) }"
    [[ ${fields[0]} == Z ]] && return 0
    echo "${fields[19]}"
}

register_pid() {
    echo "$1 $(process_start_time "$1") $2" >>"$started_pids"
}

# Stops PID with SIGNAL if it is still the process that register_pid saw,
# waits up to 30 s, then sends SIGKILL.
stop_pid() {
    local pid=$1 signal=$2 expected_start=$3 name=$4
    [[ -n $expected_start && $(process_start_time "$pid") == "$expected_start" ]] || return 0
    log "stopping $name (PID $pid) with SIG$signal"
    kill -s "$signal" "$pid" 2>/dev/null || return 0
    local tenths
    for tenths in $(seq 300); do
        [[ $(process_start_time "$pid") == "$expected_start" ]] || break
        sleep 0.1
    done
    if [[ $(process_start_time "$pid") == "$expected_start" ]]; then
        log "warning: $name (PID $pid) still runs 30 s after SIG$signal; sending SIGKILL"
        kill -s KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# PostgreSQL's fast shutdown is SIGINT. Everything else stops on SIGTERM.
stop_signal_for() { [[ $1 == postgres ]] && echo INT || echo TERM; }

# Stops every registered process that still runs, newest first. Target
# runners go first, so that none of them starts another process meanwhile.
# A runner that calls this skips itself.
stop_all_started() {
    local pid start name
    while read -r pid start name; do
        if [[ $name == runner && $pid != "$BASHPID" ]]; then
            stop_pid "$pid" TERM "$start" "$name"
        fi
    done < <(tac "$started_pids")
    while read -r pid start name; do
        if [[ $name != runner ]]; then
            stop_pid "$pid" "$(stop_signal_for "$name")" "$start" "$name"
        fi
    done < <(tac "$started_pids")
}

stop_named() {
    local pid start name
    while read -r pid start name; do
        if [[ $name == "$1" ]]; then
            stop_pid "$pid" "$(stop_signal_for "$name")" "$start" "$name"
        fi
    done < <(tac "$started_pids")
}

cleanup() {
    local status=$?
    stop_all_started
    if $keep_work; then
        log "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_updated=false
apt_install() {
    if [[ $EUID -ne 0 ]]; then
        echo "error: $* must be installed, and installing needs root; run apt-get install -y $*" >&2
        return 1
    fi
    if ! $apt_updated; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=true
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Prints the newest Debian PostgreSQL bin directory, or that of initdb on PATH.
find_postgres_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z $dir ]] && command -v initdb >/dev/null; then
        dir=$(dirname "$(readlink -f "$(command -v initdb)")")
    fi
    echo "$dir"
}

install_synapse() {
    local venv="$work/synapse-venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
    # psycopg2 builds from source against libpq, which needs pg_config.
    command -v pg_config >/dev/null || apt_install libpq-dev
    log "installing matrix-synapse[postgres]==$synapse_version into $venv"
    local started=$SECONDS
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "matrix-synapse[postgres]==$synapse_version"
    log "Synapse installed in $(( SECONDS - started )) s"
    synapse_python="$venv/bin/python"
    write_meta synapse_version \
        "$("$synapse_python" -c 'import synapse; print(synapse.__version__)')"
    write_meta python_version \
        "$("$synapse_python" -c 'import platform; print(platform.python_version())')"
}

install_postgres() {
    postgres_bindir=$(find_postgres_bindir)
    if [[ -z $postgres_bindir ]]; then
        apt_install postgresql
        postgres_bindir=$(find_postgres_bindir)
    fi
    if [[ -z $postgres_bindir ]]; then
        echo "error: no PostgreSQL server binaries found after installing postgresql" >&2
        return 1
    fi
    write_meta postgres_version "$("$postgres_bindir/postgres" --version)"
}

record_machine() {
    write_meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    write_meta harness_command "$(printf '%q ' "$0" "${original_args[@]}")"
    write_meta mode "$($quick && echo quick || echo full)"
    write_meta nproc "$(nproc)"
    write_meta cpu_model "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
    write_meta memory "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    write_meta kernel "$(uname -sr)"
    write_meta eltrix_version "$("$eltrix" --version)"
    write_meta loadtest_version "$("$loadtest" --version)"
    write_meta eltrix_binary "$eltrix_source (sha256 $(sha256sum "$eltrix" | cut -d' ' -f1))"
    write_meta loadtest_binary "$loadtest_source (sha256 $(sha256sum "$loadtest" | cut -d' ' -f1))"
    local commit
    commit=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$repo_root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        commit="$commit with uncommitted changes"
    fi
    write_meta git_commit "$commit"
    write_meta sizes "users $users, rooms $rooms, concurrency $concurrency, requests $requests,\
 duration $duration s (ceiling $ceiling_duration s), time limit $scenario_time_limit s a scenario"
    write_meta shards "$shards"
    write_meta seed "$seed"
}

# Prints the scenario names listed under "Commands:" in the loadtest help.
list_scenarios() {
    "$loadtest" --help |
        awk '/^Commands:/ { listing = 1; next } listing && /^[^ ]/ { listing = 0 }
             listing && /^  [a-z]/ { print $1 }' |
        grep -vx help || true
}

choose_scenarios() {
    local available expected name
    available=$(list_scenarios)
    scenarios=()
    for expected in "${expected_scenarios[@]}"; do
        if grep -qx -- "$expected" <<<"$available"; then
            scenarios+=("$expected")
        else
            log "skipping scenario $expected: $loadtest_source does not list it in --help"
        fi
    done
    while read -r name; do
        [[ -z $name ]] && continue
        [[ " ${expected_scenarios[*]} " == *" $name "* ]] || scenarios+=("$name")
    done <<<"$available"
    if [[ ${#scenarios[@]} -eq 0 ]]; then
        echo "error: $loadtest_source lists no scenario in --help" >&2
        exit 1
    fi
    write_meta scenarios "${scenarios[*]}"
}

# Prints the options this harness wants for SCENARIO, one "--option value"
# pair a line. Options that the scenario does not accept are dropped later.
scenario_options() {
    case "$1" in
        ceiling)
            printf '%s\n' "--concurrency $concurrency" "--duration $ceiling_duration"
            ;;
        fanout)
            printf '%s\n' "--members $fanout_members" "--messages $fanout_messages" "--rate 5" \
                "--concurrency 8" "--duration $duration"
            ;;
        initial-sync)
            printf '%s\n' "--users $sync_users" "--rooms $sync_rooms" "--messages-per-room 2" \
                "--repeats 3" "--concurrency 8"
            ;;
        *)
            printf '%s\n' "--users $users" "--rooms $rooms" "--concurrency $concurrency" \
                "--messages $requests" "--requests $requests" "--duration $duration"
            ;;
    esac
}

# Runs one scenario against URL and stores its report, output, exit code,
# wall time and command line under raw/TARGET.SCENARIO.*.
run_scenario() {
    local target=$1 scenario=$2 url=$3
    local stem="$raw/$target.$scenario"
    local accepted option value
    accepted=$("$loadtest" "$scenario" --help | grep -oE '^ +--[a-z0-9-]+' | tr -d ' ' || true)

    # Synapse registers one user at a time, so setup requests queue for
    # longer than the default 10 s request timeout.
    local args=(--url "$url" --json "$stem.json" --timeout-ms 120000)
    # A scenario without randomness (ceiling) takes no seed.
    if grep -qx -- --seed <<<"$accepted"; then
        args+=(--seed "$seed")
    fi
    for option in --url --json; do
        if ! grep -qx -- "$option" <<<"$accepted"; then
            log "skipping $scenario on $target: it accepts no $option option"
            return 0
        fi
    done
    while read -r option value; do
        if grep -qx -- "$option" <<<"$accepted"; then
            args+=("$option" "$value")
        elif [[ $option != --requests && $option != --messages ]]; then
            log "$scenario accepts no $option; it uses its own default"
        fi
    done < <(scenario_options "$scenario")

    local command=(timeout --kill-after=10 "$scenario_time_limit"
        "$loadtest" "$scenario" "${args[@]}")
    printf '%q ' "${command[@]}" >"$stem.cmd"
    log "$target: running $scenario"
    local started_ns exit_code=0
    started_ns=$(date +%s%N)
    "${command[@]}" >"$stem.log" 2>&1 &
    local pid=$!
    register_pid "$pid" loadtest
    wait "$pid" || exit_code=$?
    awk -v ns=$(( $(date +%s%N) - started_ns )) 'BEGIN { printf "%.3f\n", ns / 1e9 }' >"$stem.wall"
    echo "$exit_code" >"$stem.rc"
    if [[ $exit_code -eq 124 ]]; then
        log "$target: $scenario timed out after $scenario_time_limit s; see $stem.log"
    elif [[ $exit_code -ne 0 ]]; then
        log "$target: $scenario failed with exit code $exit_code; see $stem.log"
    fi
    # A failed scenario is reported in the table, and the others still run.
    return 0
}

run_all_scenarios() {
    local target=$1 url=$2 scenario
    for scenario in "${scenarios[@]}"; do
        run_scenario "$target" "$scenario" "$url"
    done
}

# Starts COMMAND... in the background with output to LOG and registers it.
# Sets started_pid.
start_process() {
    local name=$1 log_file=$2
    shift 2
    "$@" >"$log_file" 2>&1 &
    started_pid=$!
    register_pid "$started_pid" "$name"
}

record_peak_rss() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$2/status" >"$raw/$1.peak-rss-kib" 2>/dev/null || true
}

run_eltrix() {
    local port data
    port=$(python3 "$helper" free-port)
    data="$work/eltrix-data"
    local command=("$eltrix" --listen "127.0.0.1:$port" --data-dir "$data" --shards "$shards"
        --server-name localhost --registration open --log warn --rate-limits false)
    printf '%q ' "${command[@]}" >"$raw/eltrix.server.cmd"
    log "starting Eltrix on 127.0.0.1:$port with $shards shards"
    start_process eltrix "$raw/eltrix.server.log" "${command[@]}"
    local pid=$started_pid
    python3 "$helper" wait-http "http://127.0.0.1:$port/_matrix/client/versions" --timeout 60

    run_all_scenarios eltrix "http://127.0.0.1:$port"
    record_peak_rss eltrix "$pid"
    stop_named eltrix
}

start_postgres() {
    local dir="$work/postgres"
    local data="$dir/data" socket_dir="$dir/socket"
    mkdir -p "$socket_dir"
    local as_owner=()
    if [[ $EUID -eq 0 ]]; then
        # PostgreSQL refuses to run as root, so the cluster belongs to the
        # postgres user that Debian's package creates.
        chmod 711 "$work"
        chown -R postgres:postgres "$dir"
        as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    log "creating a PostgreSQL cluster in $data"
    (cd "$dir" && "${as_owner[@]}" "$postgres_bindir/initdb" -D "$data" -U postgres \
        -A trust -E UTF8 --locale=C) >"$raw/synapse-postgres.initdb.log" 2>&1

    # No TCP listener: Synapse connects through the unix socket in socket_dir.
    local command=("${as_owner[@]}" "$postgres_bindir/postgres" -D "$data"
        -c listen_addresses= -c "unix_socket_directories=$socket_dir")
    printf '%q ' "${command[@]}" >"$raw/synapse-postgres.postgres.cmd"
    log "starting PostgreSQL with its socket in $socket_dir"
    (cd "$dir" && exec "${command[@]}") >"$raw/synapse-postgres.postgres.log" 2>&1 &
    register_pid "$!" postgres

    local attempt
    for attempt in $(seq 150); do
        "$postgres_bindir/pg_isready" -q -h "$socket_dir" && break
        sleep 0.2
    done
    "$postgres_bindir/psql" -q -h "$socket_dir" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0"
    local server_version
    server_version=$("$postgres_bindir/psql" -At -h "$socket_dir" -U postgres -d postgres \
        -c 'SELECT version()')
    write_meta postgres_server_version "$server_version"
    postgres_socket_dir=$socket_dir
}

# Generates and edits a Synapse config for TARGET (synapse-sqlite or
# synapse-postgres), starts Synapse, runs the scenarios and stops it.
run_synapse() {
    local target=$1 database=${1#synapse-}
    local dir="$work/$target" port
    port=$(python3 "$helper" free-port)
    mkdir -p "$dir"
    (cd "$dir" && "$synapse_python" -m synapse.app.homeserver --server-name localhost \
        --config-path "$dir/homeserver.yaml" --data-directory "$dir" \
        --generate-config --report-stats=no) >"$raw/$target.generate.log" 2>&1

    local edit=(--config "$dir/homeserver.yaml" --port "$port" --database "$database")
    if [[ $database == postgres ]]; then
        start_postgres
        edit+=(--pg-host "$postgres_socket_dir" --pg-port 5432)
    else
        edit+=(--sqlite-path "$dir/homeserver.db")
    fi
    "$synapse_python" "$helper" synapse-config "${edit[@]}"
    cp "$dir/homeserver.yaml" "$raw/$target.homeserver.yaml"

    local command=("$synapse_python" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml")
    printf '%q ' "${command[@]}" >"$raw/$target.server.cmd"
    log "starting Synapse ($database) on 127.0.0.1:$port"
    (cd "$dir" && exec "${command[@]}") >"$raw/$target.server.log" 2>&1 &
    local pid=$!
    register_pid "$pid" synapse
    python3 "$helper" wait-http "http://127.0.0.1:$port/_matrix/client/versions" --timeout 180

    run_all_scenarios "$target" "http://127.0.0.1:$port"
    record_peak_rss "$target" "$pid"
    stop_named synapse
    stop_named postgres
    cp "$dir/homeserver.log" "$raw/$target.homeserver.log" 2>/dev/null || true
}

# Runs one target in a background subshell with -e in force, so that a
# failure stops only this target. Waiting on it lets the parent's traps run
# at once on SIGINT or SIGTERM. Every process is registered in started_pids,
# so the EXIT traps stop it on any exit except a SIGKILL of the harness.
run_target() {
    local target=$1 exit_code=0
    (
        trap stop_all_started EXIT
        trap 'exit 143' TERM
        case "$target" in
            eltrix) run_eltrix ;;
            synapse-*) run_synapse "$target" ;;
        esac
    ) &
    local runner=$!
    register_pid "$runner" runner
    wait "$runner" || exit_code=$?
    if [[ $exit_code -eq 0 ]]; then
        echo ok >"$raw/$target.status"
    else
        echo "failed (exit $exit_code); see the logs in $raw" >"$raw/$target.status"
        log "$target failed with exit code $exit_code"
        failures=$(( failures + 1 ))
    fi
}

main() {
    local start_seconds=$SECONDS
    mkdir -p "$work/bin"
    # Copies, so that a rebuild during the run cannot change the binaries.
    eltrix="$work/bin/eltrix"
    loadtest="$work/bin/eltrix-loadtest"
    cp "$eltrix_source" "$eltrix"
    cp "$loadtest_source" "$loadtest"

    record_machine
    write_meta targets "$targets"
    choose_scenarios
    log "scenarios: ${scenarios[*]}; targets: $targets; output: $out"

    if [[ $targets == *synapse* ]]; then
        install_synapse
    fi
    if [[ $targets == *synapse-postgres* ]]; then
        install_postgres
    fi

    failures=0
    local target
    for target in $targets; do
        run_target "$target"
    done

    write_meta total_seconds "$(( SECONDS - start_seconds ))"
    python3 "$helper" summarize --out "$out"
    log "finished in $(( SECONDS - start_seconds )) s; results in $out/results.json"

    local failed_runs
    failed_runs=$( (grep -lvx 0 "$raw"/*.rc 2>/dev/null || true) | wc -l)
    if [[ $failures -gt 0 || $failed_runs -gt 0 ]]; then
        log "$failures target(s) and $failed_runs scenario run(s) failed"
        exit 1
    fi
}

main
