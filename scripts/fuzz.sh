#!/usr/bin/env bash
# Fuzz forkguard's config parser (fuzz/, an AFL++ target) for a bounded time.
#
#   bash scripts/fuzz.sh [SECONDS]        default 600; FGT_FUZZ_SECONDS also works
#
# Installs cargo-afl (cargo install) when missing, builds AFL++ through it,
# builds the instrumented target, seeds the corpus with every config the
# project ships (config/*.toml, fuzz/seeds/*), and runs afl-fuzz with -V so
# it stops by itself. Findings land in fuzz/out/default/{crashes,hangs};
# the script prints their count and exits 1 when there is any crash.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '== %s\n' "$*" >&2; }

seconds=${1:-${FGT_FUZZ_SECONDS:-600}}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    log "usage: $0 [SECONDS]"
    exit 2
fi

if ! cargo afl --version >/dev/null 2>&1; then
    log "cargo install cargo-afl"
    cargo install --locked cargo-afl </dev/null
fi
# AFL++ itself (afl-fuzz and its runtime), built once per cargo-afl version.
if ! cargo afl config --build </dev/null >/dev/null 2>&1; then
    cargo afl config --build --force </dev/null
fi

log "building the instrumented target"
(cd fuzz && cargo afl build --release)

corpus=fuzz/out/seeds
rm -rf "$corpus"
mkdir -p "$corpus"
for f in config/*.toml fuzz/seeds/*; do
    [[ -f $f ]] || continue
    cp "$f" "$corpus/$(basename "$f")"
done
log "seed corpus: $(find "$corpus" -type f | wc -l) files"

# No CPU frequency governor or core_pattern tuning on a shared VM: tell
# AFL++ to go on without them.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_BENCH_UNTIL_CRASH=0
log "afl-fuzz for ${seconds}s"
cargo afl fuzz -V "$seconds" -i "$corpus" -o fuzz/out \
    fuzz/target/release/parse_config </dev/null || true

stats=fuzz/out/default/fuzzer_stats
if [[ ! -f $stats ]]; then
    log "afl-fuzz did not run (no $stats)"
    exit 1
fi
grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg|stability) ' "$stats"
crashes=$(find fuzz/out/default/crashes -type f -name 'id:*' 2>/dev/null | wc -l)
hangs=$(find fuzz/out/default/hangs -type f -name 'id:*' 2>/dev/null | wc -l)
log "crashes: $crashes, hangs: $hangs (inputs in fuzz/out/default/)"
((crashes == 0))
