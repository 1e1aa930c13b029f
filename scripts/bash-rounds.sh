#!/usr/bin/env bash
# A tighter measurement of the bash loop than scripts/bench.sh's (issue 5):
# many short rounds, four variants in rotated order within each round, and
# the median of per-round ratios against no preload.
#
#   scripts/bash-rounds.sh [ROUNDS [ITERATIONS]]     (default 16 rounds of 1,000)
#
# Variants: no preload; the minimal C fork interposer (the floor of any
# preload); forkguard with an empty config (loaded, no phases); forkguard
# with the bench's bash config (a stdio lock and a `kind = "listen"` fd
# action, target/bench/server-bash.toml). Needs the artefacts of a previous
# `scripts/bench.sh` run (target/bench/). Wall clock on a shared VM: run it
# on an idle machine, and read the quartiles.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-16}
iters=${2:-1000}
lib=$PWD/target/release/libforkguard.so
bench=$PWD/target/bench
for f in "$lib" "$bench/minimal_interposer.so" "$bench/server-bash.toml" "$bench/empty.toml"; do
    [[ -e $f ]] || {
        echo "bash-rounds: $f missing: run scripts/bench.sh first" >&2
        exit 1
    }
done

loop="for ((i = 0; i < $iters; i++)); do ( : ); x=\$(:); done"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() {
    local v=$1 t0 t1
    t0=$(date +%s%N)
    case $v in
    plain) env -u LD_PRELOAD -u FORKGUARD_CONFIG bash -c "$loop" ;;
    minimal) env -u FORKGUARD_CONFIG LD_PRELOAD="$bench/minimal_interposer.so" bash -c "$loop" ;;
    empty) env LD_PRELOAD="$lib" FORKGUARD_CONFIG="$bench/empty.toml" bash -c "$loop" ;;
    bashcfg) env LD_PRELOAD="$lib" FORKGUARD_CONFIG="$bench/server-bash.toml" bash -c "$loop" ;;
    esac
    t1=$(date +%s%N)
    echo "$r $v $(((t1 - t0) / 1000))" >>"$out"
}

variants=(plain minimal empty bashcfg)
for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < 4; k++)); do
        run "${variants[(r + k) % 4]}"
    done
done

python3 - "$out" "$iters" <<'EOF'
import collections, statistics, sys
d = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, v, us = line.split()
    d[int(r)][v] = int(us)
forks = 2 * int(sys.argv[2])
plain = statistics.median(d[r]["plain"] for r in d)
print(f"{len(d)} rounds of {sys.argv[2]} iterations; no preload: {plain / forks:.1f} us per fork (median)")
for v in ("minimal", "empty", "bashcfg"):
    ratios = sorted(d[r][v] / d[r]["plain"] for r in d)
    q = len(ratios) // 4
    med = statistics.median(d[r][v] for r in d)
    print(f"{v:8} ratio {statistics.median(ratios):.3f} (quartiles {ratios[q]:.3f}-{ratios[-q - 1]:.3f}), "
          f"{(med - plain) / forks:+.1f} us per fork")
EOF
