#!/usr/bin/env bash
# scripts/bench.sh: forkguard's benchmarks.
#
# Measures what libforkguard.so costs the programs it is preloaded into:
#   - at process start: callgrind instruction counts and wall clock of
#     /bin/true and `bash -c :`;
#   - per fork: callgrind parent-side instructions and wall clock of a
#     fork/_exit/waitpid loop, with 0, 1, 4 and 16 call actions, and at
#     10 MiB and 1 GiB resident;
#   - in memory: peak RSS, and what the library maps into a process.
# Each figure is set against a floor written in C under bench/: a minimal
# fork interposer (the least any preload costs) and a hand-written
# pthread_atfork version of the same call actions (the least the work costs).
# Writes docs/BENCHMARKS.md and docs/bench-overhead.svg.
#
# Usage: scripts/bench.sh [--quick] [--no-build] [--no-install]
#   --quick       fewer rounds, shorter loops (a couple of minutes)
#   --no-build    skip `cargo build --release --workspace`
#   --no-install  never run apt-get: fail if a tool is missing
# Environment:
#   FORKGUARD_LIB  the library to measure
#                  (default: $CARGO_TARGET_DIR or target/, release/libforkguard.so)
#   BENCH_DIR      build and scratch directory (default: target/bench)
#   BENCH_DOCS     where BENCHMARKS.md and the SVG go (default: docs)
#
# Meant for Debian 12 as root: installs gcc, libc6-dev, binutils, valgrind
# and gnuplot-nox with apt-get when they are missing. Wall clock on a shared
# VM drifts by +-20% between runs; callgrind counts repeat exactly.
set -euo pipefail

# ---------------------------------------------------------------- options --

QUICK=0
DO_BUILD=1
DO_INSTALL=1

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

while (($# > 0)); do
    case $1 in
        --quick) QUICK=1 ;;
        --no-build) DO_BUILD=0 ;;
        --no-install) DO_INSTALL=0 ;;
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
REAL_CONFIG=$ROOT/config/forkguard.toml

# Sizes of each measurement. Callgrind counts are exact, so --quick only
# shortens the wall-clock loops and the slow 1 GiB callgrind runs.
if ((QUICK)); then
    MODE="--quick"
    START_ROUNDS=5     # alternating rounds of the start-up wall clock
    START_SPAWNS=150   # spawns per round and variant
    FORK_ROUNDS=3      # alternating rounds of the per-fork wall clock
    FORK_N=500         # forks per run, small process
    MEM_SIZES=(10 1024)
else
    MODE="full"
    START_ROUNDS=9
    START_SPAWNS=400
    FORK_ROUNDS=5
    FORK_N=2000
    MEM_SIZES=(10 100 1024)
fi
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

# ---------------------------------------------------------------- helpers --

log() { echo "bench.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# Notes gathered while measuring: printed in the report and at the end.
NOTES=()
declare -A NOTED
note() {
    [[ -n ${NOTED[$1]+set} ]] && return 0
    NOTED[$1]=1
    NOTES+=("$1")
    log "note: $1"
}

# Sections not measured yet: listed in the report, never given numbers.
PENDING=()
pending() { PENDING+=("**$1**: $2"); }

MD="" # the report, written to $DOCS at the very end
md() { MD+="$*"$'\n'; }

# stats V... -> "median min max mad" (mad: median absolute deviation)
stats() {
    printf '%s\n' "$@" | sort -g | awk '
        function median(a, n,    i, j, t) {
            for (i = 2; i <= n; i++) {
                t = a[i]
                for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
                a[j + 1] = t
            }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            lo = v[1]; hi = v[NR]
            m = median(v, NR)
            for (i = 1; i <= NR; i++) d[i] = (v[i] > m) ? v[i] - m : m - v[i]
            printf "%.10g %.10g %.10g %.10g\n", m, lo, hi, median(d, NR)
        }'
}

# paired_ratio "A1 A2 ..." "B1 B2 ..." -> "median min max" of Ai/Bi: the
# rounds alternate, so each ratio compares runs made seconds apart.
paired_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) r[i] = x[i] / y[i]
        for (i = 2; i <= n; i++) {
            t = r[i]
            for (j = i - 1; j >= 1 && r[j] > t; j--) r[j + 1] = r[j]
            r[j + 1] = t
        }
        m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "%.10g %.10g %.10g\n", m, r[1], r[n]
    }'
}

# calc EXPR: floating-point arithmetic through awk.
calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }

# fmt_int N -> 1,234,567 (rounded, locale-independent)
fmt_int() {
    awk -v n="$1" 'BEGIN {
        s = sprintf("%.0f", n); sign = ""
        if (s ~ /^-/) { sign = "-"; s = substr(s, 2) }
        out = ""
        while (length(s) > 3) {
            out = "," substr(s, length(s) - 2) out
            s = substr(s, 1, length(s) - 3)
        }
        print sign s out
    }'
}
# fmt_delta N -> +1,234 / -56
fmt_delta() {
    local s
    s=$(fmt_int "$1")
    [[ $s == -* ]] && echo "$s" || echo "+$s"
}
fmt_f() { awk -v n="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, n }'; }
# fmt_pct PART WHOLE -> +12.3%
fmt_pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%+.1f%%", 100 * a / b }'; }
# fmt_spread MEDIAN MAD -> +-4.2% (median absolute deviation over the
# median: one stray round, common on this VM, does not blow it up)
fmt_spread() { awk -v m="$1" -v d="$2" 'BEGIN { if (m == 0) print "n/a"; else printf "±%.1f%%", 100 * d / m }'; }

# field NAME "k=v k=v ..." -> v
field() {
    local kv
    for kv in $2; do
        if [[ $kv == "$1="* ]]; then
            echo "${kv#*=}"
            return 0
        fi
    done
    return 1
}

# rotated R ITEM... -> the items, one a line, starting at index R mod count
rotated() {
    local r=$1 i n
    shift
    n=$#
    local -a a=("$@")
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${a[(i + r) % n]}"
    done
}

# ---------------------------------------------------------------- tools --

ensure_tools() {
    local -a missing=()
    command -v gcc >/dev/null || missing+=(gcc)
    [[ -e /usr/include/stdio.h && -e /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
    command -v readelf >/dev/null || missing+=(binutils)
    command -v valgrind >/dev/null || missing+=(valgrind)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    ((${#missing[@]} == 0)) && return 0
    ((DO_INSTALL)) || die "missing packages: ${missing[*]} (and --no-install given)"
    [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]}; install them or run as root"
    log "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

build_library() {
    if ((DO_BUILD)); then
        command -v cargo >/dev/null || die "cargo not found (install Rust with rustup, or use --no-build)"
        log "cargo build --release --workspace"
        (cd "$ROOT" && cargo build --release --workspace)
    fi
    [[ -f $LIB_SRC ]] || die "library not found: $LIB_SRC (set FORKGUARD_LIB or build it)"
    # Measure a copy: a rebuild of target/release during the run (another
    # shell, an editor's cargo check) must not change the library halfway.
    mkdir -p "$BUILD"
    cp "$LIB_SRC" "$LIB.tmp"
    mv -f "$LIB.tmp" "$LIB"
}

build_harnesses() {
    local cflags=(-O2 -g -Wall -Wextra -Werror)
    mkdir -p "$BUILD"
    log "building C harnesses into $BUILD"
    gcc "${cflags[@]}" -rdynamic -o "$BUILD/forkloop" "$ROOT/bench/forkloop.c"
    gcc "${cflags[@]}" -o "$BUILD/spawnloop" "$ROOT/bench/spawnloop.c"
    gcc "${cflags[@]}" -static -o "$BUILD/peakrss" "$ROOT/bench/peakrss.c"
    gcc "${cflags[@]}" -shared -fPIC -o "$BUILD/minimal_interposer.so" \
        "$ROOT/bench/minimal_interposer.c" -ldl
    gcc "${cflags[@]}" -shared -fPIC -o "$BUILD/atfork_floor.so" \
        "$ROOT/bench/atfork_floor.c" -ldl -lpthread
}

# write_calls_config K FILE: K call actions; action i runs in phase
# prepare/parent/child for i % 3 == 0/1/2 and calls fgb_call<i % 4 + 1>.
# bench/atfork_floor.c builds the same plan for FGB_ATFORK_CALLS=K.
write_calls_config() {
    local k=$1 file=$2 i
    local -a phases=(prepare parent child)
    {
        echo "# written by scripts/bench.sh: $k call actions"
        echo "version = 1"
        for ((i = 0; i < k; i++)); do
            echo
            echo "[[call]]"
            echo "phase = \"${phases[i % 3]}\""
            echo "symbol = \"fgb_call$((i % 4 + 1))\""
        done
    } >"$file"
}

# expected_calls K -> "PARENT CHILD": calls forkloop should see per fork
# (parent: prepare + parent actions; child: prepare + child actions).
expected_calls() {
    local k=$1
    local pre=$(((k + 2) / 3)) par=$(((k + 1) / 3)) chi=$((k / 3))
    echo "$((pre + par)) $((pre + chi))"
}

write_configs() {
    local k
    echo "version = 1" >"$BUILD/empty.toml"
    for k in 1 4 16; do
        write_calls_config "$k" "$BUILD/calls-$k.toml"
    done
}

# --------------------------------------------------------------- variants --

# A variant is a way to start the measured program: a label and the
# environment assignments given to that program only.
declare -A VLABEL VENV VCALLS
def_variant() {
    local id=$1 label=$2 calls=$3
    shift 3
    VLABEL[$id]=$label
    VCALLS[$id]=$calls
    VENV[$id]="$*"
}

define_variants() {
    local k
    def_variant plain "no preload" 0
    def_variant minimal "minimal C interposer" 0 "LD_PRELOAD=$BUILD/minimal_interposer.so"
    def_variant fg_noconf "forkguard, no config" 0 "LD_PRELOAD=$LIB"
    def_variant fg_empty "forkguard, empty config" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/empty.toml"
    # Control: what one more environment variable costs a program's start
    # (ld.so scans the environment, bash imports it), the same length as
    # FORKGUARD_CONFIG=.../empty.toml.
    def_variant plain_var "no preload, one unused variable" 0 "FGB_PAD_VARIABLE=$BUILD/empty.toml"
    for k in 1 4 16; do
        local s=s
        ((k == 1)) && s=""
        def_variant "fg_calls$k" "forkguard, $k call action$s" "$k" \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/calls-$k.toml"
        def_variant "atfork$k" "pthread_atfork floor, $k call$s" "$k" \
            "LD_PRELOAD=$BUILD/atfork_floor.so" "FGB_ATFORK_CALLS=$k"
    done
    def_variant fg_disabled4 "forkguard, 4 calls, FORKGUARD_DISABLE=1" 0 \
        "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/calls-4.toml" "FORKGUARD_DISABLE=1"
    if [[ -f $REAL_CONFIG ]]; then
        def_variant fg_real "forkguard, config/forkguard.toml" -1 \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$REAL_CONFIG"
    fi
}

has_variant() { [[ -n ${VLABEL[$1]+set} ]]; }

# show_env VARIANT -> the variant's environment, paths shortened, for tables
show_env() {
    local s=${VENV[$1]}
    [[ -z $s ]] && {
        echo "(none)"
        return
    }
    s=${s//"$BUILD/"/}
    s=${s//"$(dirname "$LIB")/"/}
    s=${s//"$ROOT/"/}
    echo "$s"
}

# The environment every measured program starts from: the caller's, without
# anything that would change what forkguard or the floors do.
CLEAN_ENV=(env -u LD_PRELOAD -u FORKGUARD_CONFIG -u FORKGUARD_LOG
    -u FORKGUARD_DISABLE -u FORKGUARD_LIB -u FGB_ATFORK_CALLS -u FGB_PAD_VARIABLE)

# vrun VARIANT CMD...: run CMD with the variant's environment.
vrun() {
    local -a assign=()
    read -r -a assign <<<"${VENV[$1]}"
    shift
    "${CLEAN_ENV[@]}" "${assign[@]}" "$@"
}

# check_calls VARIANT OUTPUT: compare forkloop's call counters with what the
# variant's config asks for, so that a config that was not applied cannot
# pass for a cheap one. Sets CHK to the "calls seen" cell of the tables.
CHK=""
check_calls() {
    local v=$1 out=$2 want got_p got_c
    if ((VCALLS[$v] < 0)); then
        CHK="—"
        return 0
    fi
    want=$(expected_calls "${VCALLS[$v]}")
    got_p=$(field parent_calls "$out") || got_p=0
    got_c=$(field child_calls "$out") || got_c="?"
    got_p=$(fmt_f "$got_p" 2)
    if [[ "${got_p%.00} $got_c" != "$want" ]]; then
        note "WARNING: ${VLABEL[$v]}: forkloop saw $got_p calls per fork in the parent and $got_c in the first child, expected ${want% *} and ${want#* }: the config was not applied as written"
        CHK="**${got_p%.00}/$got_c (expected ${want/ //})**"
    else
        CHK=${want/ //}
    fi
}

# note_stderr VARIANT FILE [WHERE]: report, once per variant and place,
# what a run printed on stderr besides valgrind's own lines (forkguard's
# config errors, ...).
declare -A STDERR_SEEN
note_stderr() {
    local v=$1 file=$2 where=${3:-} lines
    lines=$(grep -v '^==[0-9]*==' "$file" | head -n 5 || true)
    if [[ -n $lines && -z ${STDERR_SEEN[$v/$where]+set} ]]; then
        STDERR_SEEN[$v/$where]=1
        note "${VLABEL[$v]}${where:+ ($where)} printed on stderr: \`${lines//$'\n'/\` | \`}\`"
    fi
}

# cg VARIANT CMD...: callgrind's count of user-space instructions of CMD's
# own process. The preload goes to CMD only, through /usr/bin/env inside
# valgrind (--trace-children=yes follows that one exec; fork children are
# always run by valgrind and print their own totals, which are skipped by
# pid). Sets CG to the count; leaves CMD's stdout in $BUILD/cg.stdout.
CG=""
cg() {
    local v=$1 err=$BUILD/cg.stderr
    shift
    local -a assign=()
    read -r -a assign <<<"${VENV[$v]}"
    if ! "${CLEAN_ENV[@]}" valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file=/dev/null /usr/bin/env "${assign[@]}" "$@" \
        >"$BUILD/cg.stdout" 2>"$err"; then
        log "callgrind run failed: ${VLABEL[$v]}: $*"
        cat "$err" >&2
        return 1
    fi
    # valgrind re-executes its launcher (/usr/bin/valgrind.bin, dynamic) for
    # the exec it follows, with the subject's environment: forkguard loads
    # there too and cannot find the subject's fgb_call symbols (seen with
    # strace). Harmless; the subject's own calls are checked by check_calls.
    if grep -q '^forkguard: .*unknown symbol "fgb_call' "$err"; then
        note "Under valgrind, forkguard is also loaded into valgrind's launcher (\`valgrind.bin\`, re-executed with the subject's environment for the exec that \`--trace-children\` follows) and reports there, as it should, that \`fgb_call1\` is unknown. Harmless: the subject applied its config (\"calls seen\")."
    fi
    grep -v '^forkguard: .*unknown symbol "fgb_call' "$err" >"$err.rest" || true
    note_stderr "$v" "$err.rest" "under valgrind"
    CG=$(awk '/Callgrind, a call-graph/ && pid == "" { pid = $1 }
              /Collected :/ && $1 == pid { n = $NF }
              END { if (n == "") exit 1; print n }' "$err") ||
        die "no callgrind total for ${VLABEL[$v]}: $*"
}

# ---------------------------------------------------------------- sections --

# Results kept for the summary and the plot.
declare -A R

# shellcheck disable=SC2016 # backquotes in single quotes are Markdown
section_startup_callgrind() {
    local -a vs=(plain plain_var minimal fg_noconf fg_empty)
    has_variant fg_real && vs+=(fg_real)
    local p v a b
    log "start-up, callgrind"
    md "## Start-up: user-space instructions (callgrind)"
    md
    md 'Command: `valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null /usr/bin/env ENV PROGRAM`,'
    md 'the count of PROGRAM alone. Two runs each; "repeat" shows whether they agreed.'
    md 'The floor is the minimal C interposer: the least any preloaded fork wrapper costs.'
    md 'The "unused variable" row is a control: a variable as long as `FORKGUARD_CONFIG=…/empty.toml`'
    md 'costs that much with no preload at all (ld.so scans the environment; bash imports every variable),'
    md 'so it is part of the "empty config" rows. Differences of a few hundred instructions also come from'
    md 'the lengths of the paths in the environment.'
    md
    md "| program | preload | environment | instructions | repeat | over no preload | over the floor | overhead ÷ floor's |"
    md "|---|---|---|--:|---|--:|--:|--:|"
    for p in "/bin/true" "/bin/bash -c :"; do
        local -a cmd=()
        read -r -a cmd <<<"$p"
        for v in "${vs[@]}"; do
            cg "$v" "${cmd[@]}"
            a=$CG
            cg "$v" "${cmd[@]}"
            b=$CG
            R[cgstart/$p/$v]=$a
            R[cgstart_rep/$p/$v]=$([[ $a == "$b" ]] && echo same || echo "differs: $(fmt_int "$b")")
        done
        local base=${R[cgstart/$p/plain]} floor=${R[cgstart/$p/minimal]}
        local fo=$((floor - base))
        for v in "${vs[@]}"; do
            local n=${R[cgstart/$p/$v]} ratio="—" over="—" overf="—"
            if [[ $v != plain ]]; then
                over="$(fmt_delta $((n - base))) ($(fmt_pct $((n - base)) "$base"))"
            fi
            if [[ $v == fg_* ]]; then
                overf=$(fmt_delta $((n - floor)))
                ((fo > 0)) && ratio="$(fmt_f "$(calc "($n - $base) / $fo")" 1)×"
            fi
            md "| \`$p\` | ${VLABEL[$v]} | \`$(show_env "$v")\` | $(fmt_int "$n") | ${R[cgstart_rep/$p/$v]} | $over | $overf | $ratio |"
        done
    done
    md
}

section_startup_wall() {
    local -a vs=(plain minimal fg_noconf fg_empty)
    has_variant fg_real && vs+=(fg_real)
    local r p v out
    local -a progs=("/bin/true" "/bin/bash -c :")
    log "start-up, wall clock: $START_ROUNDS rounds x ${#vs[@]} variants x $START_SPAWNS spawns"
    "$BUILD/spawnloop" "$START_SPAWNS" /bin/true >/dev/null # warm-up
    for ((r = 0; r < START_ROUNDS; r++)); do
        for p in "${progs[@]}"; do
            local -a cmd=()
            read -r -a cmd <<<"$p"
            local -a order=()
            mapfile -t order < <(rotated "$r" "${vs[@]}")
            for v in "${order[@]}"; do
                local -a eargs=() assign=()
                read -r -a assign <<<"${VENV[$v]}"
                local kv
                for kv in "${assign[@]}"; do eargs+=(-e "$kv"); done
                out=$("${CLEAN_ENV[@]}" "$BUILD/spawnloop" "${eargs[@]}" \
                    "$START_SPAWNS" "${cmd[@]}")
                R[wstart/$p/$v]+="$(field per_spawn_us "$out") "
            done
        done
    done

    md "## Start-up: wall clock"
    md
    md "Command: \`bench/spawnloop -e ENV... $START_SPAWNS PROGRAM\` (posix_spawn + wait4, one after the other),"
    md "the mean per spawn of each run; $START_ROUNDS rounds, the variants alternating (rotated order) within each round."
    md "Median, range and spread (median absolute deviation ÷ median) over the rounds; the ratios are medians"
    md "of per-round ratios, each against the run made in the same round."
    md
    md "| program | preload | environment | median µs/spawn | range µs | spread | vs no preload | vs minimal interposer |"
    md "|---|---|---|--:|--:|--:|--:|--:|"
    for p in "${progs[@]}"; do
        for v in "${vs[@]}"; do
            local s med lo hi mad ra rf="—" rn="—"
            read -r -a s <<<"${R[wstart/$p/$v]}"
            read -r med lo hi mad <<<"$(stats "${s[@]}")"
            R[wstart_med/$p/$v]=$med
            if [[ $v != plain ]]; then
                read -r ra _ _ <<<"$(paired_ratio "${R[wstart/$p/$v]}" "${R[wstart/$p/plain]}")"
                rn="$(fmt_pct "$(calc "$ra - 1")" 1)"
            fi
            if [[ $v != plain && $v != minimal ]]; then
                read -r ra _ _ <<<"$(paired_ratio "${R[wstart/$p/$v]}" "${R[wstart/$p/minimal]}")"
                rf="$(fmt_pct "$(calc "$ra - 1")" 1)"
            fi
            md "| \`$p\` | ${VLABEL[$v]} | \`$(show_env "$v")\` | $(fmt_f "$med" 1) | $(fmt_f "$lo" 1)–$(fmt_f "$hi" 1) | $(fmt_spread "$med" "$mad") | $rn | $rf |"
        done
    done
    md
}

# mem_summary PID -> "RSS RSS_FILE RSS_ANON PRIVATE_DIRTY" in KiB
mem_summary() {
    awk '/^RssFile:/ { f = $2 } /^RssAnon:/ { a = $2 } /^Private_Dirty:/ { d = $2 }
         END { print f + a, f + 0, a + 0, d + 0 }' "/proc/$1/status" "/proc/$1/smaps_rollup"
}

section_memory() {
    local -a vs=(plain minimal fg_noconf fg_empty)
    has_variant fg_real && vs+=(fg_real)
    local p v
    local runs=$((QUICK ? 21 : 51)) out hwm=0
    log "memory"
    md "## Memory"
    md
    md "Peak RSS: \`bench/peakrss -e ENV... $runs PROGRAM\` (fork + execve + \`wait4\`, \`ru_maxrss\`), median and range"
    md "over the runs. The harness is static and small because the kernel counts the image a process had"
    md "before its execve into ru_maxrss (\`/usr/bin/time\` or a dynamic harness would put its own ~1 MiB into"
    md "every figure). File-backed pages come in by fault-around, so the address-space layout (ASLR)"
    md "moves these figures by ±100 KiB from run to run: read them to ~100 KiB; Private_Dirty below is the"
    md "per-process cost."
    md
    md "| program | preload | environment | peak RSS KiB (median) | range KiB | over no preload |"
    md "|---|---|---|--:|--:|--:|"
    for p in "/bin/true" "/bin/bash -c :"; do
        local -a cmd=()
        read -r -a cmd <<<"$p"
        for v in "${vs[@]}"; do
            local -a eargs=() assign=()
            read -r -a assign <<<"${VENV[$v]}"
            local kv med over="—"
            for kv in "${assign[@]}"; do eargs+=(-e "$kv"); done
            out=$("${CLEAN_ENV[@]}" "$BUILD/peakrss" "${eargs[@]}" "$runs" "${cmd[@]}")
            med=$(field maxrss_kb_median "$out")
            R[rss_med/$p/$v]=$med
            hwm=$(field self_hwm_kb "$out")
            [[ $v != plain ]] && over="$(fmt_delta "$(calc "$med - ${R[rss_med/$p/plain]}")") KiB"
            md "| \`$p\` | ${VLABEL[$v]} | \`$(show_env "$v")\` | $(fmt_int "$med") | $(fmt_int "$(field maxrss_kb_min "$out")")–$(fmt_int "$(field maxrss_kb_max "$out")") | $over |"
        done
    done
    md
    md "(The harness's own peak, the floor under these figures: $(fmt_int "$hwm") KiB.)"
    md

    # What the preload adds to a running process, from /proc/PID/smaps_rollup
    # and /proc/PID/maps of a `sleep` started with each variant.
    md "A running \`sleep 10\`, read after 0.5 s (\`/proc/PID/status\`, \`smaps_rollup\`, \`maps\`): RssFile is"
    md "file-backed pages (program and library text, shared through the page cache with every other process"
    md "using them); Private_Dirty is what each process pays on its own (relocated data, heap, stack)."
    md
    md "| preload | Rss KiB | RssFile KiB | RssAnon KiB | Private_Dirty KiB | Private_Dirty over no preload | objects mapped beyond no preload |"
    md "|---|--:|--:|--:|--:|--:|---|"
    local base_objs="" base_dirty=0
    for v in "${vs[@]}"; do
        local pid rss rfile ranon dirty objs extra
        local -a assign=()
        read -r -a assign <<<"${VENV[$v]}"
        "${CLEAN_ENV[@]}" "${assign[@]}" /bin/sleep 10 &
        pid=$!
        sleep 0.5
        read -r rss rfile ranon dirty <<<"$(mem_summary "$pid")"
        objs=$(awk 'NF >= 6 && $6 ~ /^\// { print $6 }' "/proc/$pid/maps" | sort -u)
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        if [[ $v == plain ]]; then
            base_objs=$objs
            base_dirty=$dirty
            extra="—"
        else
            extra=$(comm -13 <(echo "$base_objs") <(echo "$objs") | xargs -r -n1 basename | paste -sd, - | sed 's/,/, /g')
            [[ -z $extra ]] && extra="(none)"
            local pre=${VENV[$v]%% *}
            pre=${pre#LD_PRELOAD=}
            [[ $extra == *"$(basename "$pre")"* ]] ||
                note "WARNING: ${VLABEL[$v]}: $(basename "$pre") not in the maps of sleep after 0.5 s; its memory row is wrong"
        fi
        local over="—"
        [[ $v != plain ]] && over="$(fmt_delta $((dirty - base_dirty))) KiB"
        R[dirty/$v]=$dirty
        md "| ${VLABEL[$v]} | $(fmt_int "$rss") | $(fmt_int "$rfile") | $(fmt_int "$ranon") | $(fmt_int "$dirty") | $over | $extra |"
    done
    md
    local needed
    needed=$(readelf -d "$LIB" | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }' | paste -sd, - | sed 's/,/, /g')
    md "libforkguard.so: $(fmt_int "$(stat -c %s "$LIB")") bytes on disk; DT_NEEDED: $needed."
    md
}

# per_fork_cg VARIANT MIB N1 N2 -> instructions per fork (parent side);
# also records the totals and the calls check.
per_fork_cg() {
    local v=$1 mib=$2 n1=$3 n2=$4 t1 t2 chk
    cg "$v" "$BUILD/forkloop" "$n1" "$mib"
    t1=$CG
    check_calls "$v" "$(cat "$BUILD/cg.stdout")"
    chk=$CHK
    cg "$v" "$BUILD/forkloop" "$n2" "$mib"
    t2=$CG
    R[cgfork_t1/$mib/$v]=$t1
    R[cgfork_t2/$mib/$v]=$t2
    R[cgfork_chk/$mib/$v]=$chk
    R[cgfork/$mib/$v]=$(calc "($t2 - $t1) / ($n2 - $n1)")
}

# The floor of a forkguard variant: the atfork version of the same calls,
# or the minimal interposer when there are none.
floor_of() {
    case $1 in
        fg_calls*) echo "atfork${1#fg_calls}" ;;
        fg_*) echo minimal ;;
        *) echo "" ;;
    esac
}

section_perfork_callgrind() {
    local -a vs=(plain minimal atfork1 atfork4 atfork16 fg_noconf fg_empty fg_calls1 fg_calls4 fg_calls16 fg_disabled4)
    local v
    log "per fork, callgrind: ${#vs[@]} variants, forkloop $CG_N1 and $CG_N2"
    for v in "${vs[@]}"; do
        per_fork_cg "$v" 0 "$CG_N1" "$CG_N2"
    done
    md "## Per fork: parent-side instructions (callgrind)"
    md
    md "Command: \`valgrind --tool=callgrind ... /usr/bin/env ENV forkloop N\` for N = $CG_N1 and $CG_N2;"
    md "per fork = (total($CG_N2) − total($CG_N1)) / $((CG_N2 - CG_N1)): the parent's own instructions for one"
    md "fork + waitpid, start-up and exit cancelled out. The children are counted separately by valgrind"
    md "and left out. Callgrind counts repeat exactly, so one run each."
    md "Call actions cycle through phases prepare, parent, child and call \`fgb_call1..4\` (a volatile increment);"
    md '"calls seen" is what forkloop counted per fork, parent side / first child (prepare + child),'
    md "checked against the config. The floor of a forkguard row is \`bench/atfork_floor.c\` doing the same calls"
    md "through \`pthread_atfork\` (or the minimal interposer when there are no calls)."
    md
    md "| preload | environment | calls seen | total N=$CG_N1 | total N=$CG_N2 | per fork | over no preload | over the floor |"
    md "|---|---|---|--:|--:|--:|--:|--:|"
    local base=${R[cgfork/0/plain]}
    for v in "${vs[@]}"; do
        local per=${R[cgfork/0/$v]} over="—" overf="—" fl
        fl=$(floor_of "$v")
        [[ $v != plain ]] && over=$(fmt_delta "$(calc "$per - $base")")
        [[ -n $fl ]] && overf="$(fmt_delta "$(calc "$per - ${R[cgfork/0/$fl]}")") (vs ${VLABEL[$fl]})"
        md "| ${VLABEL[$v]} | \`$(show_env "$v")\` | ${R[cgfork_chk/0/$v]} | $(fmt_int "${R[cgfork_t1/0/$v]}") | $(fmt_int "${R[cgfork_t2/0/$v]}") | $(fmt_f "$per" 1) | $over | $overf |"
    done
    md

    local mib n1 n2
    for mib in "${MEM_SIZES[@]}"; do
        read -r n1 n2 <<<"$(mem_cg_n "$mib")"
        log "per fork, callgrind, $mib MiB resident: forkloop $n1 and $n2"
        for v in plain fg_calls4; do
            per_fork_cg "$v" "$mib" "$n1" "$n2"
        done
        R[cgmem_n/$mib]="$n1 $n2"
    done
    md "With memory allocated and touched before the loop (\`forkloop N MiB\`); user-space instructions"
    md "do not see the page-table copy, which is kernel time (see the wall clock below)."
    md
    md "| allocated | preload | calls seen | N | per fork | over no preload |"
    md "|--:|---|---|---|--:|--:|"
    for mib in "${MEM_SIZES[@]}"; do
        for v in plain fg_calls4; do
            local per=${R[cgfork/$mib/$v]} over="—"
            [[ $v != plain ]] && over=$(fmt_delta "$(calc "$per - ${R[cgfork/$mib/plain]}")")
            md "| +$mib MiB | ${VLABEL[$v]} | ${R[cgfork_chk/$mib/$v]} | ${R[cgmem_n/$mib]/ / and } | $(fmt_f "$per" 1) | $over |"
        done
    done
    md
}

# wall_forks MIB N ROUNDS VARIANT...: alternating runs of forkloop; stores
# the per-fork microseconds of each round in R[wfork/MIB/VARIANT].
wall_forks() {
    local mib=$1 n=$2 rounds=$3 r v out
    shift 3
    "$BUILD/forkloop" "$n" "$mib" >/dev/null # warm-up
    for ((r = 0; r < rounds; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" "$@")
        for v in "${order[@]}"; do
            out=$(vrun "$v" "$BUILD/forkloop" "$n" "$mib" 2>"$BUILD/wall.stderr") || {
                cat "$BUILD/wall.stderr" >&2
                die "forkloop failed: ${VLABEL[$v]}"
            }
            note_stderr "$v" "$BUILD/wall.stderr" "forkloop $n $mib"
            if ((r == 0)); then
                check_calls "$v" "$out"
                R[wfork_chk/$mib/$v]=$CHK
                R[wfork_flt/$mib/$v]="$(fmt_f "$(field parent_minflt "$out")" 1) / $(fmt_f "$(field child_minflt "$out")" 1)"
            fi
            R[wfork/$mib/$v]+="$(field per_fork_us "$out") "
        done
    done
}

# wall_fork_rows MIB VARIANT...: table rows for wall_forks results
wall_fork_rows() {
    local mib=$1 v n=$2
    shift 2
    for v in "$@"; do
        local s med lo hi mad rn="—" dn="—" ra
        read -r -a s <<<"${R[wfork/$mib/$v]}"
        read -r med lo hi mad <<<"$(stats "${s[@]}")"
        R[wfork_med/$mib/$v]=$med
        R[wfork_lo/$mib/$v]=$lo
        R[wfork_hi/$mib/$v]=$hi
        if [[ $v != plain ]]; then
            read -r ra _ _ <<<"$(paired_ratio "${R[wfork/$mib/$v]}" "${R[wfork/$mib/plain]}")"
            rn=$(fmt_pct "$(calc "$ra - 1")" 1)
            dn=$(fmt_f "$(calc "$med - ${R[wfork_med/$mib/plain]}")" 2)
            [[ $dn == -* ]] || dn="+$dn"
        fi
        md "| +$mib MiB | ${VLABEL[$v]} | \`$(show_env "$v") forkloop $n $mib\` | ${R[wfork_chk/$mib/$v]} | ${R[wfork_flt/$mib/$v]} | $(fmt_f "$med" 2) | $(fmt_f "$lo" 2)–$(fmt_f "$hi" 2) | $(fmt_spread "$med" "$mad") | $rn | $dn |"
    done
}

section_perfork_wall() {
    local -a vs=(plain minimal atfork4 fg_empty fg_calls4)
    local mib n
    log "per fork, wall clock: $FORK_ROUNDS rounds x ${#vs[@]} variants x forkloop $FORK_N"
    wall_forks 0 "$FORK_N" "$FORK_ROUNDS" "${vs[@]}"
    for mib in "${MEM_SIZES[@]}"; do
        n=$(mem_fork_n "$mib")
        log "per fork, wall clock, $mib MiB: $FORK_ROUNDS rounds x forkloop $n"
        wall_forks "$mib" "$n" "$FORK_ROUNDS" plain fg_calls4
    done

    md "## Per fork: wall clock"
    md
    md "Command: \`ENV forkloop N MiB\`; forkloop times its own loop (fork, child \`_exit\`, \`waitpid\`), start-up and"
    md "allocation excluded, and prints the mean per fork. $FORK_ROUNDS rounds, variants alternating (rotated order);"
    md "median, range and spread (median absolute deviation ÷ median) over the rounds; \"vs no preload\" is"
    md "the median of per-round ratios. Differences below the spread are noise: compare the callgrind"
    md "section for small effects. Page faults (first round, \`getrusage\` minor faults of the parent and of"
    md "each child, per fork) explain much of the kernel-side cost: after a fork, the first write to each"
    md "page in either process is a copy-on-write fault, a few µs each on this VM."
    md
    md "| allocated | preload | command | calls seen | page faults per fork (parent / child) | median µs/fork | range µs | spread | vs no preload | Δ µs |"
    md "|--:|---|---|---|--:|--:|--:|--:|--:|--:|"
    wall_fork_rows 0 "$FORK_N" "${vs[@]}"
    for mib in "${MEM_SIZES[@]}"; do
        wall_fork_rows "$mib" "$(mem_fork_n "$mib")" plain fg_calls4
    done
    md
}

# ------------------------------------------------- sections still to write --
# Hooks for later measurements. Each is called like the sections above and,
# once written, appends its own table with md and stores what the plot or
# the summary needs in R. Until then it only lists itself as not measured:
# no figure goes into the report that was not measured.

section_lock_actions() {
    pending "Lock actions" "per-fork cost of \`[[lock]]\` actions (\`acquire\` and \`reinit\`; mutex, rwlock, spinlock, semaphore, stdio) against a hand-written pthread_atfork floor, uncontended and with other threads holding the locks. Needs lock globals exported by bench/forkloop.c."
}

section_fd_actions() {
    pending "fd actions" "per-fork cost of \`[[fd]]\` selectors and actions (close, cloexec, devnull, reopen, disconnect, renew) as a function of the number of open descriptors (the hard limit here is 20,000)."
}

section_servers() {
    pending "Real servers" "pgbench against PostgreSQL (a fork per connection) and redis-benchmark against redis with BGSAVE forks, with and without forkguard and a realistic config."
}

# ------------------------------------------------------------------- plot --

write_plot() {
    local data=$BUILD/plot-calls.dat mdata=$BUILD/plot-mem.dat k v mib
    log "plot"
    {
        echo "# calls forkguard_over_plain atfork_over_plain (instructions per fork)"
        for k in 0 1 4 16; do
            local fg at
            if ((k == 0)); then
                fg=${R[cgfork/0/fg_empty]}
                at=${R[cgfork/0/plain]}
            else
                fg=${R[cgfork/0/fg_calls$k]}
                at=${R[cgfork/0/atfork$k]}
            fi
            echo "$k $(calc "$fg - ${R[cgfork/0/plain]}") $(calc "$at - ${R[cgfork/0/plain]}")"
        done
    } >"$data"
    {
        echo "# MiB instr_over_plain plain_us plain_lo plain_hi fg_us fg_lo fg_hi"
        for mib in "${MEM_SIZES[@]}"; do
            v=fg_calls4
            echo "$mib $(calc "${R[cgfork/$mib/$v]} - ${R[cgfork/$mib/plain]}")" \
                "${R[wfork_med/$mib/plain]} ${R[wfork_lo/$mib/plain]} ${R[wfork_hi/$mib/plain]}" \
                "${R[wfork_med/$mib/$v]} ${R[wfork_lo/$mib/$v]} ${R[wfork_hi/$mib/$v]}"
        done
    } >"$mdata"
    gnuplot <<EOF
set terminal svg size 1200,420 dynamic noenhanced font "sans,11" background rgb "white"
set output "$BUILD/bench-overhead.svg"
set multiplot layout 1,3 title "forkguard: per-fork overhead (callgrind, parent side; wall clock at right)"
set grid
set key top left
set title "instructions per fork over no preload,\nvs call actions"
set xlabel "call actions"
set ylabel "instructions per fork"
set xtics ("0" 0, "1" 1, "4" 2, "16" 3)
set xrange [-0.3:3.3]
set yrange [0:*]
plot "$data" using (\$0):2 with linespoints lw 2 pt 7 title "forkguard", \
     "$data" using (\$0):3 with linespoints lw 2 pt 5 title "pthread_atfork floor"
set title "instructions per fork over no preload,\nforkguard with 4 call actions, vs resident memory"
set xlabel "MiB allocated and touched"
set logscale x
set xtics auto
set xrange [5:2048]
set offsets 0, 0, graph 0.15, 0
plot "$mdata" using 1:2 with linespoints lw 2 pt 7 title "forkguard, 4 calls"
set title "wall clock per fork (median, min-max)\nvs resident memory"
set ylabel "µs per fork"
set logscale y
set yrange [*:*]
set offsets 0, 0, 0, 0
plot "$mdata" using 1:3:4:5 with yerrorlines lw 2 pt 5 title "no preload", \
     "$mdata" using 1:6:7:8 with yerrorlines lw 2 pt 7 title "forkguard, 4 calls"
unset multiplot
EOF
    mkdir -p "$DOCS"
    cp "$BUILD/bench-overhead.svg" "$DOCS/bench-overhead.svg"
}

# ----------------------------------------------------------------- report --

machine_note() {
    local cpu mem
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    md "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); mode: $MODE; script runtime: $((SECONDS / 60)) min $((SECONDS % 60)) s"
    md "- machine: ${cpu:-unknown CPU}, $(nproc) CPUs, $mem; $(uname -sr)"
    md "- $(ldd --version | head -n 1 | sed 's/^ldd //'); $(valgrind --version); $(gcc --version | head -n 1); $(rustc --version 2>/dev/null || echo 'rustc: not found')"
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || rev="no commit yet"
    if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then
        rev+=", with uncommitted changes"
    fi
    md "- forkguard: a copy of \`$LIB_SRC\` taken at the start (sha256 $(sha256sum "$LIB" | cut -c1-12)), built from the work tree at $rev"
    md "- load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    md "  (anything else running on the 2 CPUs, a build or a test suite, shows in the wall-clock figures)"
    md "- a noisy shared VM: wall-clock figures drift by ±20% between runs (and more between days);"
    md "  callgrind instruction counts repeat exactly and are the figures to compare across runs."
    md "  There is no hardware instruction counter here (\`perf stat\` cannot count instructions)."
    if [[ -e /etc/forkguard/forkguard.toml ]]; then
        md "- **/etc/forkguard/forkguard.toml exists**: the \"no config\" rows read it."
    fi
}

write_report() {
    local body=$MD p=/bin/true
    MD=""
    md "# forkguard benchmarks"
    md
    local how="scripts/bench.sh"
    ((QUICK)) && how+=" --quick"
    md "Generated by \`$how\`; do not edit by hand. Harnesses and floors, in C:"
    md "\`bench/forkloop.c\`, \`bench/spawnloop.c\`, \`bench/peakrss.c\`, \`bench/minimal_interposer.c\`,"
    md "\`bench/atfork_floor.c\`."
    md
    machine_note
    md
    md "## Summary"
    md
    local base=${R[cgstart/$p/plain]}
    md "- Start-up of \`/bin/true\`: $(fmt_int "$base") instructions alone;" \
        "the minimal C interposer adds $(fmt_delta "$(calc "${R[cgstart/$p/minimal]} - $base")")," \
        "forkguard without a config $(fmt_delta "$(calc "${R[cgstart/$p/fg_noconf]} - $base")")," \
        "with an empty config $(fmt_delta "$(calc "${R[cgstart/$p/fg_empty]} - $base")")."
    md "- Wall clock per spawn of \`/bin/true\`: $(fmt_f "${R[wstart_med/$p/plain]}" 0) µs alone," \
        "$(fmt_f "${R[wstart_med/$p/fg_empty]}" 0) µs with forkguard and an empty config (medians)."
    md "- Per fork, parent side: $(fmt_f "${R[cgfork/0/plain]}" 0) instructions without a preload;" \
        "forkguard adds $(fmt_f "$(calc "${R[cgfork/0/fg_empty]} - ${R[cgfork/0/plain]}")" 0) with an empty config" \
        "and $(fmt_f "$(calc "${R[cgfork/0/fg_calls4]} - ${R[cgfork/0/plain]}")" 0) with 4 call actions," \
        "where hand-written pthread_atfork handlers add $(fmt_f "$(calc "${R[cgfork/0/atfork4]} - ${R[cgfork/0/plain]}")" 0)."
    md "- Wall clock per fork (fork + \`_exit\` + \`waitpid\`): $(fmt_f "${R[wfork_med/0/plain]}" 0) µs alone," \
        "$(fmt_f "${R[wfork_med/0/fg_calls4]}" 0) µs with forkguard and 4 calls;" \
        "with ${MEM_SIZES[-1]} MiB allocated $(fmt_int "${R[wfork_med/${MEM_SIZES[-1]}/plain]}") µs" \
        "and $(fmt_int "${R[wfork_med/${MEM_SIZES[-1]}/fg_calls4]}") µs (noisy: see the spread)."
    md "- Memory: peak RSS of \`/bin/true\` $(fmt_int "${R[rss_med/$p/plain]}") KiB alone," \
        "$(fmt_int "${R[rss_med/$p/fg_empty]}") KiB with forkguard and an empty config (medians);" \
        "private dirty memory of a running \`sleep\`" \
        "$(fmt_delta "$(calc "${R[dirty/fg_empty]} - ${R[dirty/plain]}")") KiB with forkguard and an empty config."
    md
    md "![per-fork overhead](bench-overhead.svg)"
    md
    if ((${#NOTES[@]} > 0)); then
        md "## Notes from this run"
        md
        local n
        for n in "${NOTES[@]}"; do md "- $n"; done
        md
    fi
    MD+=$body
    md "## Not measured yet"
    md
    md "Hooks in \`scripts/bench.sh\` (\`section_lock_actions\`, \`section_fd_actions\`, \`section_servers\`) are"
    md "ready for these; no figures are reported until they are measured."
    md
    local x
    for x in "${PENDING[@]}"; do md "- $x"; done
    md
    md "## Reproducing"
    md
    md '```sh'
    md "scripts/bench.sh            # full run, a few minutes on 2 CPUs"
    md "scripts/bench.sh --quick    # shorter loops and fewer rounds"
    md '```'
    md
    md "Raw per-round figures and the plot data are left in \`target/bench/\` (\`results.txt\`, \`plot-*.dat\`)."
    mkdir -p "$DOCS"
    printf '%s' "$MD" >"$DOCS/BENCHMARKS.md"
    local key
    for key in "${!R[@]}"; do printf '%s\t%s\n' "$key" "${R[$key]}"; done | sort >"$BUILD/results.txt"
}

# ------------------------------------------------------------------- main --

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

main() {
    [[ $ROOT != *[[:space:]]* && $BUILD != *[[:space:]]* && $LIB_SRC != *[[:space:]]* ]] ||
        die "paths with white space are not supported: $ROOT, $BUILD, $LIB_SRC"
    ensure_tools
    build_library
    build_harnesses
    write_configs
    define_variants
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

    if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
        note "WARNING: load average ${LOAD_START%% *} on $(nproc) CPUs at the start: something else is running, and the wall-clock figures of this run are slower and noisier than on an idle machine (callgrind counts are not affected)."
    fi

    # Sanity check before spending minutes: the library loads and applies
    # a call config.
    local out
    out=$(vrun fg_calls4 "$BUILD/forkloop" 3 2>&1) || die "forkloop with forkguard failed: $out"
    check_calls fg_calls4 "$out"
    log "sanity: forkguard with 4 calls: $out (calls seen: $CHK)"

    section_startup_callgrind
    section_startup_wall
    section_memory
    section_perfork_callgrind
    section_perfork_wall
    section_lock_actions
    section_fd_actions
    section_servers
    write_plot
    write_report
    log "wrote $DOCS/BENCHMARKS.md and $DOCS/bench-overhead.svg in $((SECONDS / 60)) min $((SECONDS % 60)) s"
    if ((${#NOTES[@]} > 0)); then
        log "notes:"
        printf '  - %s\n' "${NOTES[@]}" >&2
    fi
}

main
