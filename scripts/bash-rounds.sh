#!/usr/bin/env bash
# A tight measurement of the bash loop (issue 5), the method scripts/bench.sh
# also uses for its bash rows: many short rounds, four variants in rotated
# order within each round, and the median of per-round ratios against no
# preload (with their quartiles).
#
#   scripts/bash-rounds.sh [ROUNDS [ITERATIONS]]     (default 16 rounds of 1,000)
#
# Variants: no preload; the minimal C fork interposer (the floor of any
# preload); forkguard with an empty config (loaded, no phases); forkguard
# with the bench's bash config (a stdio lock and a `kind = "listen"` fd
# action, target/bench/server-bash.toml). Builds what it needs into
# target/bench/ (gcc; the library is FORKGUARD_LIB or target/release's, not
# rebuilt). The rounds go to target/bench/bash-rounds.jsonl, the summary
# (scripts/bench_report.py --bash-rounds) to stdout. Wall clock on a shared
# VM: run it on an idle machine, and read the quartiles.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-16}
iters=${2:-1000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILD=${BENCH_DIR:-$TARGET_DIR/bench}
# LIB_SRC and DO_BUILD are read by scripts/bench/lib.sh, sourced below.
# shellcheck disable=SC2034
LIB_SRC=${FORKGUARD_LIB:-$TARGET_DIR/release/libforkguard.so}
LIB=$BUILD/libforkguard.so
RAW=$BUILD/bash-rounds.jsonl
# shellcheck disable=SC2034
DO_BUILD=0
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
# shellcheck source=scripts/bench/setup.sh
source "$ROOT/scripts/bench/setup.sh"
# shellcheck source=scripts/bench/bashloop.sh
source "$ROOT/scripts/bench/bashloop.sh"

build_library
build_harnesses minimal_interposer
echo "version = 1" >"$BUILD/empty.toml"
write_server_config bash "$BUILD/server-bash.toml"
: >"$RAW"
def_variant plain "no preload" 0
def_variant minimal "minimal C interposer" 0 "LD_PRELOAD=$BUILD/minimal_interposer.so"
def_variant fg_empty "forkguard, empty config" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/empty.toml"
def_variant srv_bash_fg "forkguard, bash config" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/server-bash.toml"
bash_loop_rounds "$rounds" "$iters" plain minimal fg_empty srv_bash_fg
python3 "$ROOT/scripts/bench_report.py" --bash-rounds "$RAW"
