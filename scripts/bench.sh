#!/usr/bin/env bash
# shellcheck disable=SC2034  # the settings are read by the files of scripts/bench/
# scripts/bench.sh: forkguard's benchmarks.
#
# Measures what libforkguard.so costs the programs it is preloaded into:
#   - at process start: callgrind instruction counts and wall clock of
#     /bin/true and `bash -c :`;
#   - per fork: callgrind parent-side instructions and wall clock of a
#     fork/_exit/waitpid loop, with 0, 1, 4 and 16 call actions, 1, 4 and 16
#     lock actions, 4 fd actions and a [child] block, and at 10 MiB and
#     1 GiB resident;
#   - in the child: forkguard's own child-phase time (its JSON log) for fd
#     actions over 10 to 15,000 open descriptors;
#   - in memory: peak RSS, and what the library maps into a process;
#   - real servers: PostgreSQL (pgbench -C), Redis (BGSAVE of 1 GiB) and a
#     bash loop of subshells (in many short rounds, as scripts/bash-rounds.sh),
#     with and without forkguard;
#   - the features of the lock-reach, held-lock and spawn/exit issues
#     (scripts/bench/features.sh): each row is skipped, with a line in the
#     report, while `forkguard check` rejects its config key.
# Each figure is set against a floor written in C under bench/: a minimal
# fork interposer (the least any preload costs) and a hand-written
# pthread_atfork version of the same call and lock actions (the least the
# work costs).
#
# This script (and scripts/bench/*.sh) only installs, builds, runs and
# measures: it writes every figure to a raw file, one JSON object a line
# ($BENCH_DIR/raw.jsonl). scripts/bench_report.py computes the statistics
# from that file (scripts/bench_stats.py; the feature rows in
# scripts/bench_features.py, the plots in scripts/bench_plot.py) and writes
# docs/BENCHMARKS.md, docs/bench-overhead.svg and docs/bench-threads.svg;
# run it alone to re-render a report without measuring again:
#   scripts/bench_report.py target/bench/raw.jsonl --out docs
#
# Usage: scripts/bench.sh [--quick] [--no-build] [--no-install] [--only SECTIONS]
#   --quick          fewer rounds, shorter loops (a couple of minutes)
#   --no-build       skip `cargo build --release --workspace`
#   --no-install     never run apt-get: fail if a tool is missing
#   --only SECTIONS  run only these sections (comma-separated: startup-cg,
#                    startup-wall, memory, fork-cg, fork-wall, locks, fds,
#                    servers, features) into $BENCH_DIR/raw-only.jsonl and
#                    print its report on stdout (docs/ untouched)
# Environment:
#   FORKGUARD_LIB  the library to measure
#                  (default: $CARGO_TARGET_DIR or target/, release/libforkguard.so)
#   FORKGUARD_CLI  the forkguard command, for the features' `check`
#                  (default: beside FORKGUARD_LIB)
#   BENCH_DIR      build and scratch directory (default: target/bench)
#   BENCH_DOCS     where BENCHMARKS.md and the SVG go (default: docs)
#
# Meant for Debian 12 as root: installs gcc, libc6-dev, binutils, valgrind,
# python3, postgresql, redis-server and redis-tools with apt-get when they
# are missing (PostgreSQL runs as the postgres account, in a scratch
# directory, on loopback ports). Wall clock on a shared
# VM drifts by +-20% between runs; callgrind counts repeat exactly.
set -euo pipefail

QUICK=0
DO_BUILD=1
DO_INSTALL=1
ONLY=""

usage() {
    sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

while (($# > 0)); do
    case $1 in
        --quick) QUICK=1 ;;
        --no-build) DO_BUILD=0 ;;
        --no-install) DO_INSTALL=0 ;;
        --only)
            (($# > 1)) || {
                echo "bench.sh: --only needs a list of sections" >&2
                exit 2
            }
            ONLY=,$2,
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument: $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILD=${BENCH_DIR:-$TARGET_DIR/bench}
DOCS=${BENCH_DOCS:-$ROOT/docs}
LIB_SRC=${FORKGUARD_LIB:-$TARGET_DIR/release/libforkguard.so}
LIB=$BUILD/libforkguard.so # a snapshot of LIB_SRC, taken after the build
CLI=${FORKGUARD_CLI:-$(dirname "$LIB_SRC")/forkguard}
REAL_CONFIG=$ROOT/config/forkguard.toml
RAW=$BUILD/raw.jsonl
[[ -n $ONLY ]] && RAW=$BUILD/raw-only.jsonl

# Sizes of each measurement. Callgrind counts are exact, so --quick only
# shortens the wall-clock loops and the slow 1 GiB callgrind runs.
if ((QUICK)); then
    MODE="--quick"
    START_ROUNDS=5     # alternating rounds of the start-up wall clock
    START_SPAWNS=150   # spawns per round and variant
    FORK_ROUNDS=3      # alternating rounds of the per-fork wall clock
    FORK_N=500         # forks per run, small process
    MEM_SIZES=(10 1024)
    CHILD_ROUNDS=2     # alternating rounds of the child-phase runs
    SERVER_ROUNDS=3    # alternating rounds of each server benchmark
    BASH_ROUNDS=4      # rotated rounds of the bash loop
    BASH_ITERS=500     # iterations of the bash loop per run
    PG_SECONDS=4       # pgbench -T per run
    PEAKRSS_RUNS=21    # bench/peakrss runs per program and variant
else
    MODE="full"
    START_ROUNDS=9
    START_SPAWNS=400
    FORK_ROUNDS=5
    FORK_N=2000
    MEM_SIZES=(10 100 1024)
    CHILD_ROUNDS=3
    SERVER_ROUNDS=5
    # The bash loop's difference is a few % of a noisy wall clock: many
    # short rounds (scripts/bash-rounds.sh's method, about 1 s each).
    BASH_ROUNDS=16
    BASH_ITERS=1000
    PG_SECONDS=10
    PEAKRSS_RUNS=51
fi
FD_COUNTS=(10 1000 15000) # open descriptors for the close benchmarks (hard limit here: 20,000)
REDIS_KEYS=1000000        # DEBUG POPULATE keys of 1,000 bytes: ~1 GiB resident
CG_N1=100 # callgrind: forks in the short run
CG_N2=200 # ... and in the long one; per fork = difference / (N2 - N1)

# Wall-clock forks per run at each resident size (1 GiB forks take ~15 ms).
mem_fork_n() {
    case $1 in
        10) echo $((QUICK ? 500 : 2000)) ;;
        100) echo 300 ;;
        *) echo $((QUICK ? 20 : 100)) ;;
    esac
}
# Callgrind fork counts at each resident size: "N1 N2".
mem_cg_n() {
    if (($1 >= 1024 && QUICK)); then echo "20 40"; else echo "$CG_N1 $CG_N2"; fi
}

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
# shellcheck source=scripts/bench/setup.sh
source "$ROOT/scripts/bench/setup.sh"
# shellcheck source=scripts/bench/local.sh
source "$ROOT/scripts/bench/local.sh"
# shellcheck source=scripts/bench/bashloop.sh
source "$ROOT/scripts/bench/bashloop.sh"
# shellcheck source=scripts/bench/servers.sh
source "$ROOT/scripts/bench/servers.sh"
# shellcheck source=scripts/bench/features.sh
source "$ROOT/scripts/bench/features.sh"

# wanted SECTION: whether --only (if given) names it.
wanted() { [[ -z $ONLY || $ONLY == *",$1,"* ]]; }

# Notes about the configs measured, before any figure.
config_notes() {
    if [[ -f $REAL_CONFIG ]]; then
        local progs
        progs=$(awk '/^\[/ { sect = $0 } sect == "[settings]" && /^programs[ \t]*=/ { sub(/#.*/, ""); sub(/^programs[ \t]*=[ \t]*/, ""); print; exit }' "$REAL_CONFIG")
        [[ -n $progs ]] &&
            note "config/forkguard.toml limits itself to programs = $progs: it does not apply to /bin/true or bash, so its rows show what loading, parsing and validating it costs a program it does not guard."
    else
        note "config/forkguard.toml not found: no rows for a realistic config."
    fi
    [[ -e /etc/forkguard/forkguard.toml ]] &&
        note "/etc/forkguard/forkguard.toml exists: the \"no config\" variant reads it."
    if has_variant fg_real; then
        # The plan cache (/run/forkguard, written by root processes only, for
        # a config file unchanged for 2 s): warm it, and say what the
        # "config/forkguard.toml" rows measured.
        vrun fg_real /bin/true || true
        local entry
        entry=/run/forkguard/plan-$(stat -c %D "$REAL_CONFIG")-$(printf %x "$(stat -c %i "$REAL_CONFIG")")
        if [[ -f $entry ]]; then
            note "The plan cache had an entry for config/forkguard.toml ($entry, written by a root process): the \"config/forkguard.toml\" rows check the file and read the entry instead of parsing it; the \"no plan cache\" rows (\`FORKGUARD_PLAN_CACHE=off\`) parse it, as every process did before the cache and as processes do when no root process has written an entry."
        else
            note "No plan cache entry for config/forkguard.toml (only root processes write one, for a file unchanged for 2 s): both config/forkguard.toml rows parse the file."
        fi
    fi
    if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
        note "WARNING: load average ${LOAD_START%% *} on $(nproc) CPUs at the start: something else is running, and the wall-clock figures of this run are slower and noisier than on an idle machine (callgrind counts are not affected)."
    fi
}

# The machine and the run, for the report's header.
machine_meta() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || rev="no commit yet"
    if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then
        rev+=", with uncommitted changes"
    fi
    raw machine "date=$(date -u '+%Y-%m-%d %H:%M UTC')" "runtime_s=$SECONDS" \
        "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
        "nproc=$(nproc)" "mem_kb=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)" "kernel=$(uname -sr)" \
        "libc=$(ldd --version | head -n 1 | sed 's/^ldd //')" "valgrind=$(valgrind --version)" \
        "gcc=$(gcc --version | head -n 1)" "rustc=$(rustc --version 2>/dev/null || echo 'rustc: not found')" \
        "lib_src=$LIB_SRC" "lib_sha=$(sha256sum "$LIB" | cut -c1-12)" "rev=$rev" \
        "load_start=$LOAD_START" "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" \
        "etc_config=$([[ -e /etc/forkguard/forkguard.toml ]] && echo yes || echo no)"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

main() {
    [[ $ROOT != *[[:space:]]* && $BUILD != *[[:space:]]* && $LIB_SRC != *[[:space:]]* ]] ||
        die "paths with white space are not supported: $ROOT, $BUILD, $LIB_SRC"
    ensure_tools
    build_library
    build_harnesses "${HARNESSES[@]}"
    : >"$RAW"
    raw run "mode=$MODE" "only=${ONLY//,/ }" "start_rounds=$START_ROUNDS" "start_spawns=$START_SPAWNS" \
        "fork_rounds=$FORK_ROUNDS" "child_rounds=$CHILD_ROUNDS" "server_rounds=$SERVER_ROUNDS" \
        "bash_rounds=$BASH_ROUNDS" "bash_iters=$BASH_ITERS" "pg_seconds=$PG_SECONDS" \
        "peakrss_runs=$PEAKRSS_RUNS" "redis_keys=$REDIS_KEYS" "cg_n1=$CG_N1" "cg_n2=$CG_N2" \
        "fd_counts=${FD_COUNTS[*]}" "mem_sizes=${MEM_SIZES[*]}"
    write_configs
    define_variants
    config_notes

    # Sanity check before spending minutes: the library loads and applies
    # a call config.
    local out
    out=$(vrun fg_calls4 "$BUILD/forkloop" 3 2>&1) || die "forkloop with forkguard failed: $out"
    check_calls fg_calls4 "$out"
    log "sanity: forkguard with 4 calls: $out (calls seen: $CHK)"

    wanted startup-cg && section_startup_callgrind
    wanted startup-wall && section_startup_wall
    wanted memory && section_memory
    wanted fork-cg && section_perfork_callgrind
    wanted fork-wall && section_perfork_wall
    wanted locks && section_lock_actions
    wanted fds && section_fd_actions
    wanted servers && section_servers
    wanted features && section_features
    machine_meta
    log "measured in $((SECONDS / 60)) min $((SECONDS % 60)) s; raw results in $RAW"
    if [[ -n $ONLY ]]; then
        python3 "$ROOT/scripts/bench_report.py" "$RAW"
    else
        python3 "$ROOT/scripts/bench_report.py" "$RAW" --out "$DOCS" --plot-data "$BUILD"
        log "wrote $DOCS/BENCHMARKS.md and $DOCS/bench-overhead.svg"
    fi
    ((NOTE_COUNT == 0)) || log "$NOTE_COUNT notes (logged above, and in the report)"
}

main
