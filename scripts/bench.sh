#!/usr/bin/env bash
# shellcheck disable=SC2016  # backticks in table labels are Markdown, not command substitutions
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
#     bash loop of subshells, with and without forkguard.
# Each figure is set against a floor written in C under bench/: a minimal
# fork interposer (the least any preload costs) and a hand-written
# pthread_atfork version of the same call and lock actions (the least the
# work costs).
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
# Meant for Debian 12 as root: installs gcc, libc6-dev, binutils, valgrind,
# gnuplot-nox, postgresql, redis-server and redis-tools with apt-get when
# they are missing (PostgreSQL runs as the postgres account, in a scratch
# directory, on loopback ports). Wall clock on a shared
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
    CHILD_ROUNDS=2     # alternating rounds of the child-phase runs
    SERVER_ROUNDS=3    # alternating rounds of each server benchmark
    BASH_ROUNDS=3      # alternating rounds of the bash loop
    PG_SECONDS=4       # pgbench -T per run
else
    MODE="full"
    START_ROUNDS=9
    START_SPAWNS=400
    FORK_ROUNDS=5
    FORK_N=2000
    MEM_SIZES=(10 100 1024)
    CHILD_ROUNDS=3
    SERVER_ROUNDS=5
    # The bash loop's difference is a few % of a noisy wall clock: more
    # rounds (about 4 s each) for a steadier median.
    BASH_ROUNDS=11
    PG_SECONDS=10
fi
FD_COUNTS=(10 1000 15000) # open descriptors for the close benchmarks (hard limit here: 20,000)
BASH_LOOPS=5000           # iterations of the bash loop (a subshell and a command substitution each)
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
    compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
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

# write_locks_config K FILE: K lock actions on bench/forkloop's fgb_lock1..K,
# type mutex, strategy acquire. bench/atfork_floor.c does the same lock work
# for FGB_ATFORK_LOCKS=K.
write_locks_config() {
    local k=$1 file=$2 i
    {
        echo "# written by scripts/bench.sh: $k lock actions"
        echo "version = 1"
        for ((i = 1; i <= k; i++)); do
            printf '\n[[lock]]\nsymbol = "fgb_lock%d"\ntype = "mutex"\nstrategy = "acquire"\n' "$i"
        done
    } >"$file"
}

# write_fd_config FILE SELECT ACTION: one fd action.
write_fd_config() {
    printf '# written by scripts/bench.sh\nversion = 1\n\n[[fd]]\nselect = { %s }\naction = "%s"\n' \
        "$2" "$3" >"$1"
}

# write_server_config PROGRAM FILE: the config the server benchmarks
# preload. It applies to PROGRAM only: glibc's stdout lock is taken around
# the fork and the listening sockets get FD_CLOEXEC in the child. (No
# optional [[call]] to a symbol the server lacks: forkguard keeps such an
# action and reports it as failed, "symbol not resolved", at every fork.)
write_server_config() {
    cat >"$2" <<EOF
# written by scripts/bench.sh: a config for $1
version = 1

[settings]
programs = ["$1"]

[[lock]]
symbol = "stdout"
type = "stdio"
strategy = "acquire"

[[fd]]
select = { kind = "listen" }
action = "cloexec"
EOF
}

write_configs() {
    local k
    echo "version = 1" >"$BUILD/empty.toml"
    # The servers' config without `programs`: it applies to every program,
    # so start-up shows what an active config costs (parse, symbols, every
    # libc function bound at load).
    write_server_config any "$BUILD/active.toml"
    sed -i '/^\[settings\]$/d; /^programs = /d' "$BUILD/active.toml"
    for k in 1 4 16; do
        write_calls_config "$k" "$BUILD/calls-$k.toml"
        write_locks_config "$k" "$BUILD/locks-$k.toml"
    done
    # 4 fd actions, the kinds of config/forkguard.toml; forkloop has no
    # descriptor they select, so this is the cost of looking.
    cat >"$BUILD/fds-4.toml" <<EOF
# written by scripts/bench.sh: 4 fd actions
version = 1

[[fd]]
select = { kind = "listen" }
action = "cloexec"

[[fd]]
select = { kind = "socket", peer = "127.0.0.1:6379" }
action = "disconnect"

[[fd]]
select = { kind = "epoll" }
action = "renew"

[[fd]]
select = { path = "/var/log/fgb-bench-none.log" }
action = "reopen"
path = "$BUILD/fgb-reopen.%p.log"
flags = ["append", "create"]
EOF
    cat >"$BUILD/child.toml" <<EOF
# written by scripts/bench.sh: a [child] block
version = 1

[child]
parent_death_signal = "TERM"
reset_signal_mask = true
reset_signal_handlers = true
name = "fgb-child"
EOF
    write_fd_config "$BUILD/fd-close-range.toml" 'from = 3' close
    write_fd_config "$BUILD/fd-close-file.toml" 'from = 3, kind = "file"' close
    write_fd_config "$BUILD/fd-kind-listen.toml" 'kind = "listen"' cloexec
    write_fd_config "$BUILD/fd-peer.toml" 'kind = "socket", peer = "127.0.0.1:6379"' disconnect
    write_server_config postgres "$BUILD/server-postgres.toml"
    write_server_config redis-server "$BUILD/server-redis.toml"
    write_server_config bash "$BUILD/server-bash.toml"
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
    def_variant fg_active "forkguard, active config (stdio lock, listen fd)" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/active.toml"
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
    for k in 1 4 16; do
        local s=s
        ((k == 1)) && s=""
        def_variant "fg_locks$k" "forkguard, $k lock action$s" 0 \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/locks-$k.toml"
        def_variant "atlocks$k" "pthread_atfork floor, $k lock$s" 0 \
            "LD_PRELOAD=$BUILD/atfork_floor.so" "FGB_ATFORK_LOCKS=$k"
    done
    def_variant fg_fds4 "forkguard, 4 fd actions" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/fds-4.toml"
    def_variant fg_child "forkguard, [child] block" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/child.toml"
    def_variant fd_range '`from = 3` → close' 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/fd-close-range.toml"
    def_variant fd_loop '`from = 3, kind = "file"` → close' 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/fd-close-file.toml"
    def_variant fd_listen '`kind = "listen"` → cloexec' 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/fd-kind-listen.toml"
    def_variant fd_peer '`kind = "socket", peer = "127.0.0.1:6379"` → disconnect' 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/fd-peer.toml"
    def_variant fg_disabled4 "forkguard, 4 calls, FORKGUARD_DISABLE=1" 0 \
        "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/calls-4.toml" "FORKGUARD_DISABLE=1"
    if [[ -f $REAL_CONFIG ]]; then
        def_variant fg_real "forkguard, config/forkguard.toml" -1 \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$REAL_CONFIG"
        def_variant fg_real_nc "forkguard, config/forkguard.toml, no plan cache" -1 \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$REAL_CONFIG" "FORKGUARD_PLAN_CACHE=off"
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
    -u FORKGUARD_DISABLE -u FORKGUARD_LIB -u FGB_ATFORK_CALLS -u FGB_PAD_VARIABLE
    -u FORKGUARD_LOG_FORMAT -u FGB_ATFORK_LOCKS -u FGB_OPEN_FDS -u FGB_OPEN_KIND
    -u FORKGUARD_PLAN_CACHE)

# vrun VARIANT [NAME=VALUE...] CMD...: run CMD with the variant's environment
# (and the extra assignments: env takes them all, no second env process).
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
    # there too and cannot find the subject's fgb_call and fgb_lock symbols (seen with
    # strace). Harmless; the subject's own calls are checked by check_calls.
    if grep -q '^forkguard: .*unknown symbol "fgb_\(call\|lock\)' "$err"; then
        note "Under valgrind, forkguard is also loaded into valgrind's launcher (\`valgrind.bin\`, re-executed with the subject's environment for the exec that \`--trace-children\` follows) and reports there, as it should, that \`fgb_call1\` (or \`fgb_lock1\`) is unknown. Harmless: the subject applied its config (\"calls seen\", \"actions (forkguard log)\")."
    fi
    grep -v '^forkguard: .*unknown symbol "fgb_\(call\|lock\)' "$err" >"$err.rest" || true
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
    local -a vs=(plain plain_var minimal fg_noconf fg_empty fg_active)
    has_variant fg_real && vs+=(fg_real_nc fg_real)
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
    local -a vs=(plain minimal fg_noconf fg_empty fg_active)
    has_variant fg_real && vs+=(fg_real_nc fg_real)
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
        fg_locks*) echo "atlocks${1#fg_locks}" ;;
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
    local -a vs=(plain minimal atfork4 fg_empty fg_calls4 atlocks4 fg_locks4 fg_fds4 fg_child)
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

# ------------------------------------------------ lock, fd, child actions --

# json_values FILE EVENT FIELD -> the FIELD values of forkguard's JSON log
# lines of that event, one a line.
json_values() {
    awk -v ev="\"event\":\"$2\"" -v f="\"$3\":" 'index($0, ev) {
        i = index($0, f)
        if (i == 0) next
        v = substr($0, i + length(f))
        sub(/[,}].*/, "", v)
        print v
    }' "$1"
}

# verify_actions VARIANT [CMD...]: run CMD (default: forkloop 2) once with
# forkguard's JSON log, and set ACTS to what the log says the phases did:
# "fork: P ok, F failed; child: C ok, G failed" (first fork). A config that
# was refused or not applied shows as missing events and is noted.
ACTS=""
verify_actions() {
    local v=$1 logf=$BUILD/verify.log
    shift
    local -a cmd=("$@")
    ((${#cmd[@]})) || cmd=("$BUILD/forkloop" 2)
    rm -f "$logf"
    vrun "$v" "FORKGUARD_LOG=$logf" FORKGUARD_LOG_FORMAT=json "${cmd[@]}" \
        >/dev/null 2>"$BUILD/verify.stderr" || true
    note_stderr "$v" "$BUILD/verify.stderr" "with the JSON log"
    local fo ff co cf
    fo=$(json_values "$logf" fork actions_ok 2>/dev/null | head -n 1)
    ff=$(json_values "$logf" fork actions_failed 2>/dev/null | head -n 1)
    co=$(json_values "$logf" child actions_ok 2>/dev/null | head -n 1)
    cf=$(json_values "$logf" child actions_failed 2>/dev/null | head -n 1)
    if [[ -z $fo || -z $co ]]; then
        note "WARNING: ${VLABEL[$v]}: no fork or child event in forkguard's log: the config was not applied"
        ACTS="**not applied**"
        return 0
    fi
    if ((ff > 0 || cf > 0)); then
        note "WARNING: ${VLABEL[$v]}: forkguard reported failed actions: $(json_values "$logf" child errors | head -n 1)"
    fi
    ACTS="fork $fo ok, $ff failed; child $co ok, $cf failed"
}

# shellcheck disable=SC2016 # backquotes in single quotes are Markdown
section_lock_actions() {
    local -a vs=(atlocks1 atlocks4 atlocks16 fg_locks1 fg_locks4 fg_locks16 fg_fds4 fg_child)
    local v
    log "per fork, callgrind: lock, fd and child actions"
    for v in "${vs[@]}"; do
        per_fork_cg "$v" 0 "$CG_N1" "$CG_N2"
        if [[ $v == fg_* ]]; then
            verify_actions "$v"
            R[acts/$v]=$ACTS
        else
            R[acts/$v]="—"
        fi
    done
    md "## Per fork: lock, fd and child actions (callgrind)"
    md
    md 'Same command and method as above (`forkloop` 100 and 200 forks under callgrind, parent side).'
    md 'Lock actions take `fgb_lock1..K` (normal mutexes exported by `forkloop`, uncontended) with'
    md '`type = "mutex"`, `strategy = "acquire"`: locked in prepare, unlocked in the parent, re-initialised'
    md 'in the child. Their floor, `bench/atfork_floor.c` with `FGB_ATFORK_LOCKS=K`, does the same with'
    md '`pthread_atfork` handlers: `pthread_mutex_lock`, `pthread_mutex_unlock`, `pthread_mutex_init` keeping'
    md "the mutex's kind, without forkguard's timeout, owner check and bookkeeping. The 4 fd actions"
    md '(`kind = "listen"` → cloexec, `peer = "127.0.0.1:6379"` → disconnect, `kind = "epoll"` → renew,'
    md '`path` → reopen) and the `[child]` block (parent_death_signal, reset_signal_mask, reset_signal_handlers,'
    md 'name) work in the child only: their parent-side cost is the bookkeeping; their child-side cost is in'
    md 'the next section. "actions (forkguard log)" is what forkguard'"'"'s JSON log reported for the first'
    md 'fork of a separate run (`FORKGUARD_LOG=FILE FORKGUARD_LOG_FORMAT=json forkloop 2`): the proof'
    md 'that the config was applied.'
    md
    md "| preload | environment | actions (forkguard log) | per fork | over no preload | over the floor |"
    md "|---|---|---|--:|--:|--:|"
    local base=${R[cgfork/0/plain]}
    for v in "${vs[@]}"; do
        local per=${R[cgfork/0/$v]} over overf="—" fl
        fl=$(floor_of "$v")
        over=$(fmt_delta "$(calc "$per - $base")")
        [[ -n $fl ]] && overf="$(fmt_delta "$(calc "$per - ${R[cgfork/0/$fl]}")") (vs ${VLABEL[$fl]})"
        md "| ${VLABEL[$v]} | \`$(show_env "$v")\` | ${R[acts/$v]} | $(fmt_f "$per" 1) | $over | $overf |"
    done
    md
}

# child_runs TAG FDS KIND FORKS VARIANT...: alternating rounds of
# `forkloop FORKS` with FDS extra descriptors of KIND open. Each round and
# variant runs twice: once with forkguard's JSON log (the child events'
# phase_us go to R[cphase/TAG/VARIANT]) and once without (per-fork wall
# clock to R[cwall/TAG/VARIANT]; logging costs a file open and write per
# line, kept out of the wall clock).
child_runs() {
    local tag=$1 fds=$2 kind=$3 n=$4 r v out logf=$BUILD/child.log
    shift 4
    for ((r = 0; r < CHILD_ROUNDS; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" "$@")
        for v in "${order[@]}"; do
            out=$(vrun "$v" "FGB_OPEN_FDS=$fds" "FGB_OPEN_KIND=$kind" \
                "$BUILD/forkloop" "$n" 2>"$BUILD/child.stderr") || {
                cat "$BUILD/child.stderr" >&2
                die "forkloop failed: ${VLABEL[$v]}, $fds descriptors"
            }
            note_stderr "$v" "$BUILD/child.stderr" "$fds descriptors"
            R[cwall/$tag/$v]+="$(field per_fork_us "$out") "
            [[ $v == plain ]] && continue
            rm -f "$logf"
            vrun "$v" "FGB_OPEN_FDS=$fds" "FGB_OPEN_KIND=$kind" "FORKGUARD_LOG=$logf" \
                FORKGUARD_LOG_FORMAT=json "$BUILD/forkloop" "$n" >/dev/null 2>"$BUILD/child.stderr" ||
                die "forkloop with the JSON log failed: ${VLABEL[$v]}, $fds descriptors"
            local failed
            failed=$(json_values "$logf" child actions_failed | sort -n | tail -n 1)
            [[ -z $failed ]] && note "WARNING: ${VLABEL[$v]}, $fds descriptors: no child event in forkguard's log"
            [[ -n $failed && $failed != 0 ]] &&
                note "WARNING: ${VLABEL[$v]}, $fds descriptors: failed actions in the child: $(json_values "$logf" child errors | head -n 1)"
            R[cphase/$tag/$v]+="$(json_values "$logf" child phase_us | paste -sd' ' -) "
            if ((r == 0)); then
                R[cok/$tag/$v]=$(json_values "$logf" child actions_ok | head -n 1)
            fi
        done
    done
}

# child_rows TAG FDS KIND N VARIANT...: table rows for child_runs results.
child_rows() {
    local tag=$1 fds=$2 kind=$3 n=$4 v
    shift 4
    for v in "$@"; do
        local s med lo hi mad ph="—" ra rn="—" cnt="—" cfg
        read -r -a s <<<"${R[cwall/$tag/$v]}"
        read -r med lo hi mad <<<"$(stats "${s[@]}")"
        R[cwall_med/$tag/$v]=$med
        cfg="no preload"
        if [[ $v != plain ]]; then
            local -a p=()
            read -r -a p <<<"${R[cphase/$tag/$v]}"
            local pm plo phi
            read -r pm plo phi _ <<<"$(stats "${p[@]}")"
            R[cphase_med/$tag/$v]=$pm
            ph="$(fmt_f "$pm" 1) ($(fmt_f "$plo" 1)–$(fmt_f "$phi" 1))"
            cnt="${#p[@]}"
            read -r ra _ _ <<<"$(paired_ratio "${R[cwall/$tag/$v]}" "${R[cwall/$tag/plain]}")"
            rn=$(fmt_pct "$(calc "$ra - 1")" 1)
            cfg="${VLABEL[$v]} (\`$(show_env "$v" | sed 's/.*FORKGUARD_CONFIG=//')\`)"
        fi
        md "| $(fmt_int "$fds") $kind | $cfg | ${R[cok/$tag/$v]:-—} | $cnt | $ph | $(fmt_f "$med" 1) ($(fmt_f "$lo" 1)–$(fmt_f "$hi" 1)) | $rn |"
    done
}

# shellcheck disable=SC2016 # backquotes in single quotes are Markdown
section_fd_actions() {
    local fds n
    local -a counts=("${FD_COUNTS[@]}")
    for fds in "${counts[@]}"; do
        n=$((fds >= 10000 ? (QUICK ? 10 : 30) : (QUICK ? 100 : 300)))
        log "child phase: close over $fds descriptors, $CHILD_ROUNDS rounds x forkloop $n"
        child_runs "close$fds" "$fds" file "$n" plain fd_range fd_loop
        R[cn/close$fds]=$n
    done
    n=$((QUICK ? 100 : 300))
    log "child phase: kind and peer selectors over 1000 sockets"
    child_runs sel1000 1000 udp "$n" plain fd_listen fd_peer
    log "child phase: 4 fd actions over 10 descriptors, [child] block"
    child_runs fds10 10 file "$n" plain fg_fds4 fg_child

    md "## In the child: fd actions and child settings"
    md
    md 'Command: `ENV FGB_OPEN_FDS=K FGB_OPEN_KIND=file|udp forkloop N`: forkloop opens K more descriptors'
    md '(`/dev/null`, or unconnected UDP sockets) before its fork loop. "child phase" is forkguard'"'"'s own'
    md 'measure of its child phase, `phase_us` of the `child` events of its JSON log'
    md '(`FORKGUARD_LOG=FILE FORKGUARD_LOG_FORMAT=json`, a separate run of each round), median and range over'
    md 'every child. The wall clock per fork (runs without the log) includes it, since forkloop waits for'
    md 'each child to exit; a child that exits with descriptors open also pays for closing them in the'
    md "kernel at exit. $CHILD_ROUNDS rounds, variants alternating. The hard descriptor limit on this VM is"
    md '20,000 (`setrlimit` cannot raise it, even as root), so the largest case is 15,000 descriptors,'
    md 'not 100,000.'
    md
    md '`from = 3` with nothing else is done with `close_range(2)` (one system call per gap in'
    md '`except`); adding `kind = "file"` makes forkguard list `/proc/self/fd` and look at each'
    md 'descriptor (`fstat`), then close the files one by one: the per-descriptor path every other'
    md 'selector takes. The kind and peer selectors run over 1,000 UDP sockets that they do not select'
    md '(`kind = "listen"` asks each socket `SO_ACCEPTCONN`; `peer` asks for its peer address).'
    md
    md "| descriptors open | config | actions ok (first child) | children logged | child phase µs, median (range) | wall µs per fork, median (range) | wall vs no preload |"
    md "|--:|---|--:|--:|--:|--:|--:|"
    for fds in "${counts[@]}"; do
        child_rows "close$fds" "$fds" file "${R[cn/close$fds]}" plain fd_range fd_loop
    done
    child_rows sel1000 1000 udp "$n" plain fd_listen fd_peer
    child_rows fds10 10 file "$n" plain fg_fds4 fg_child
    md
}

# ---------------------------------------------------------- real servers --

SCRATCH="" # servers' scratch directory, removed at exit
SERVER_PIDS=()
cleanup_servers() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
    done
    for p in "${SERVER_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    SERVER_PIDS=()
    [[ -n $SCRATCH && -d $SCRATCH ]] && rm -rf "$SCRATCH"
    SCRATCH=""
}

# free_port -> a TCP port nothing listens on, on 127.0.0.1, below Linux's
# ephemeral range (32768-60999), where clients' own ports come from. A port
# can still be taken between this check and the server's bind: the callers
# retry.
free_port() {
    local p
    for ((p = 20000 + RANDOM % 12000; ; p++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
}

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# server_rows KEY WHAT COMMAND: statistics of R[srv/KEY/plain] and
# R[srv/KEY/fg] (one figure per round) as two table rows; keeps the median
# of per-round forkguard ÷ plain ratios in R[srv_ratio/KEY].
server_rows() {
    local key=$1 what=$2 command=$3 v
    local ra lo hi
    read -r ra lo hi <<<"$(paired_ratio "${R[srv/$key/fg]}" "${R[srv/$key/plain]}")"
    R[srv_ratio/$key]=$ra
    for v in plain fg; do
        local s med mn mx mad label="no preload" rc="—"
        read -r -a s <<<"${R[srv/$key/$v]}"
        read -r med mn mx mad <<<"$(stats "${s[@]}")"
        R[srv_med/$key/$v]=$med
        if [[ $v == fg ]]; then
            label="forkguard"
            rc="$(fmt_f "$ra" 3) ($(fmt_f "$lo" 3)–$(fmt_f "$hi" 3))"
        fi
        md "| $what | $label | \`$command\` | ${#s[@]} | $(fmt_f "$med" 1) | $(fmt_f "$mn" 1)–$(fmt_f "$mx" 1) | $(fmt_spread "$med" "$mad") | $rc |"
    done
}

server_bash() {
    local cfg=$BUILD/server-bash.toml r v t0 t1
    local loop="for ((i = 0; i < $BASH_LOOPS; i++)); do ( : ); x=\$(:); done"
    log "servers: bash loop of $BASH_LOOPS subshells and command substitutions, $BASH_ROUNDS rounds"
    def_variant srv_bash_plain "no preload" 0
    def_variant srv_bash_fg "forkguard" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$cfg"
    verify_actions srv_bash_fg /bin/bash -c '( : )'
    R[srv_acts/bash]=$ACTS
    # forkguard's own time per fork, from its JSON log: 200 subshells.
    local logf=$BUILD/bash-phases.log
    rm -f "$logf"
    vrun srv_bash_fg "FORKGUARD_LOG=$logf" FORKGUARD_LOG_FORMAT=json \
        /bin/bash -c 'for ((i = 0; i < 200; i++)); do ( : ); done' || die "bash with the JSON log failed"
    local -a ph=()
    mapfile -t ph < <(json_values "$logf" fork phase_us)
    R[srv_own/bash]=$(stats "${ph[@]}" | cut -d' ' -f1)
    mapfile -t ph < <(json_values "$logf" child phase_us)
    R[srv_own_child/bash]=$(stats "${ph[@]}" | cut -d' ' -f1)
    for ((r = 0; r < BASH_ROUNDS; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" plain fg)
        for v in "${order[@]}"; do
            t0=$(date +%s%N)
            vrun "srv_bash_$v" /bin/bash -c "$loop" || die "bash loop failed"
            t1=$(date +%s%N)
            R[srv/bash/$v]+="$(calc "($t1 - $t0) / 1e6") "
        done
    done
}

server_postgres() {
    local bindir pg cfg=$BUILD/server-postgres.toml r v
    bindir=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)
    if [[ -z $bindir || ! -x $bindir/postgres ]] || ! id postgres >/dev/null 2>&1; then
        note "PostgreSQL not measured: no server binaries under /usr/lib/postgresql or no postgres account"
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        note "PostgreSQL not measured: the script runs the server as the postgres account and needs root"
        return 0
    fi
    pg=$SCRATCH/pg
    mkdir -p "$pg"
    chown postgres: "$pg"
    local -A port
    for v in plain fg; do
        runuser -u postgres -- "$bindir/initdb" -A trust -U postgres -E UTF8 --no-sync \
            -D "$pg/$v" >"$pg/initdb-$v.log" 2>&1 || {
            cat "$pg/initdb-$v.log" >&2
            die "initdb failed"
        }
    done
    # pg_start SIDE [ENV...]: start the server of that side (fsync off: the
    # forks are measured, not the disk).
    pg_start() {
        local side=$1
        shift
        local try
        for try in 1 2 3; do
            port[$side]=$(free_port)
            setsid runuser -u postgres -- env -i PATH=/usr/bin:/bin "$@" "$bindir/postgres" \
                -D "$pg/$side" -p "${port[$side]}" -k "$pg/$side" -c listen_addresses=127.0.0.1 \
                -c fsync=off -c synchronous_commit=off -c ssl=off -c max_connections=20 \
                >"$pg/$side.log" 2>&1 &
            SERVER_PIDS+=($!)
            PG_PID[$side]=$!
            wait_for 30 grep -q "ready to accept connections" "$pg/$side.log" && break
            wait "${PG_PID[$side]}" 2>/dev/null || true
            grep -q "already in use" "$pg/$side.log" && ((try < 3)) && continue
            cat "$pg/$side.log" >&2
            die "postgres ($side) did not start"
        done
    }
    pg_stop() {
        kill "${PG_PID[$1]}" 2>/dev/null || true
        wait "${PG_PID[$1]}" 2>/dev/null || true
    }
    local -A PG_PID
    local -a fgenv=("LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$cfg")
    # First, a short run with forkguard's JSON log: proof that the postmaster
    # applies the config at each fork (then restarted without the log).
    pg_start fg "${fgenv[@]}" "FORKGUARD_LOG=$pg/fg-verify.log" FORKGUARD_LOG_FORMAT=json
    pgbench -i -q -s 1 -h 127.0.0.1 -p "${port[fg]}" -U postgres postgres >"$pg/init-fg.log" 2>&1 ||
        die "pgbench -i failed: $(cat "$pg/init-fg.log")"
    pgbench -C -S -n -t 20 -c 1 -h 127.0.0.1 -p "${port[fg]}" -U postgres postgres >/dev/null 2>&1 ||
        die "pgbench (verification run) failed"
    pg_stop fg
    local nchild nfork failed
    nfork=$(json_values "$pg/fg-verify.log" fork actions_ok | grep -c . || true)
    nchild=$(json_values "$pg/fg-verify.log" child actions_ok | grep -c . || true)
    failed=$(json_values "$pg/fg-verify.log" child actions_failed | sort -n | tail -n 1)
    R[srv_acts/pg]="$nfork fork and $nchild child events for 20 connections; child actions ok: $(json_values "$pg/fg-verify.log" child actions_ok | sort -n | uniq -c | awk '{ printf "%s%s× %s", sep, $1, $2; sep = ", " }'), most failed: ${failed:-none}"
    ((nchild >= 20)) || note "WARNING: PostgreSQL with forkguard: only $nchild child events for 20 connections in the verification run"
    pg_start fg "${fgenv[@]}"
    pg_start plain
    pgbench -i -q -s 1 -h 127.0.0.1 -p "${port[plain]}" -U postgres postgres >"$pg/init-plain.log" 2>&1 ||
        die "pgbench -i failed: $(cat "$pg/init-plain.log")"
    log "servers: pgbench -C -S -T $PG_SECONDS -c 2 -j 2, $SERVER_ROUNDS rounds"
    for ((r = 0; r < SERVER_ROUNDS; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" plain fg)
        for v in "${order[@]}"; do
            local out tps
            out=$(pgbench -C -S -n -T "$PG_SECONDS" -c 2 -j 2 -h 127.0.0.1 -p "${port[$v]}" \
                -U postgres postgres 2>&1) || die "pgbench failed ($v): $out"
            tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
            [[ -n $tps ]] || die "no tps in pgbench's output: $out"
            R[srv/pg/$v]+="$tps "
        done
    done
    pg_stop fg
    pg_stop plain
    R[srv_pg_version]=$("$bindir/postgres" --version)
}

# redis_once SIDE ROUND: start a fresh redis-server (with forkguard for
# SIDE fg), fill it, BGSAVE once, record latest_fork_usec, stop it. A fresh
# server per measurement: two long-lived servers differ in their own memory
# layout by more than forkguard costs (seen: one server's forks 30% slower
# than the other's, whichever had the preload).
redis_once() {
    local v=$1 r=$2 rd=$SCRATCH/redis port pid
    local -a env=()
    [[ $v == fg ]] && env=("LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/server-redis.toml"
        "FORKGUARD_LOG=$rd/fg.log" FORKGUARD_LOG_FORMAT=json)
    rm -rf "${rd:?}/$v"
    mkdir -p "$rd/$v"
    local try
    for try in 1 2 3; do
        port=$(free_port)
        setsid env -i PATH=/usr/bin:/bin "${env[@]}" redis-server --port "$port" \
            --bind 127.0.0.1 --save "" --appendonly no --dir "$rd/$v" \
            --enable-debug-command yes --daemonize no >"$rd/$v.out" 2>&1 &
        pid=$!
        SERVER_PIDS+=("$pid")
        wait_for 30 redis-cli -p "$port" ping && break
        wait "$pid" 2>/dev/null || true
        grep -q "Address already in use" "$rd/$v.out" && ((try < 3)) && continue
        die "redis-server ($v) did not start: $(cat "$rd/$v.out")"
    done
    redis-cli -p "$port" DEBUG POPULATE "$REDIS_KEYS" key 1000 >/dev/null
    ((r == 0)) && R[srv_redis_rss/$v]=$(redis-cli -p "$port" INFO memory | awk -F: '/^used_memory_rss:/ { printf "%.0f", $2 / 1048576 }')
    redis-cli -p "$port" BGSAVE >/dev/null
    sleep 0.2
    wait_for 120 eval "redis-cli -p $port INFO persistence | grep -q '^rdb_bgsave_in_progress:0'" ||
        die "BGSAVE ($v) did not finish"
    redis-cli -p "$port" INFO persistence | grep -q '^rdb_last_bgsave_status:ok' || die "BGSAVE ($v) failed"
    R[srv/redis/$v]+="$(redis-cli -p "$port" INFO stats | awk -F: '/^latest_fork_usec:/ { print $2 + 0 }') "
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "${rd:?}/$v"
}

server_redis() {
    local rd=$SCRATCH/redis r v
    mkdir -p "$rd"
    log "servers: redis BGSAVE of $REDIS_KEYS keys, $SERVER_ROUNDS rounds (a fresh server each)"
    for ((r = 0; r < SERVER_ROUNDS; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" plain fg)
        for v in "${order[@]}"; do
            redis_once "$v" "$r"
        done
    done
    local nfork nchild ph
    nfork=$(json_values "$rd/fg.log" fork phase_us | grep -c . || true)
    nchild=$(json_values "$rd/fg.log" child phase_us | grep -c . || true)
    ((nchild >= SERVER_ROUNDS)) || note "WARNING: Redis with forkguard: $nchild child events for $SERVER_ROUNDS BGSAVEs"
    local -a phs=()
    mapfile -t phs < <(json_values "$rd/fg.log" fork phase_us)
    ph=$(stats "${phs[@]}")
    R[srv_own/redis]=${ph%% *}
    R[srv_acts/redis]="$nfork fork and $nchild child events for $SERVER_ROUNDS BGSAVEs; child actions ok: $(json_values "$rd/fg.log" child actions_ok | sort -n | uniq -c | awk '{ printf "%s%s× %s", sep, $1, $2; sep = ", " }')"
    R[srv_redis_version]=$(redis-server --version | awk '{ print $3 }')
}

# shellcheck disable=SC2016 # backquotes in single quotes are Markdown
section_servers() {
    SCRATCH=$(mktemp -d /tmp/fgb-servers.XXXXXX)
    chmod 755 "$SCRATCH"
    trap cleanup_servers EXIT
    server_bash
    server_postgres
    server_redis
    cleanup_servers
    trap - EXIT

    md "## Real servers"
    md
    md "Each server runs twice at once, started the same way, one with \`LD_PRELOAD=libforkguard.so"
    md "FORKGUARD_CONFIG=server-PROGRAM.toml\` in its environment; the rounds alternate between them"
    md "(rotated order), and the ratio is the median of per-round ratios. The config applies to the"
    md "server's program only (\`[settings] programs\`) and has two actions any server could use: glibc's"
    md "\`stdout\` lock taken around the fork (\`type = \"stdio\"\`, \`acquire\`) and \`kind = \"listen\"\` →"
    md "\`cloexec\` in the child (a scan of \`/proc/self/fd\`). Wall clock on this shared VM: see the load"
    md "average above; a round that another job slowed shows in the range."
    md
    md "| benchmark | preload | command | rounds | median | range | spread | forkguard ÷ no preload (range) |"
    md "|---|---|---|--:|--:|--:|--:|--:|"
    server_rows bash "bash loop, ms per run (lower is better)" "bash -c 'for ((i = 0; i < $BASH_LOOPS; i++)); do ( : ); x=\$(:); done'"
    [[ -n ${R[srv/pg/plain]:-} ]] &&
        server_rows pg "PostgreSQL, TPS (higher is better)" "pgbench -C -S -n -T $PG_SECONDS -c 2 -j 2"
    server_rows redis "Redis \`latest_fork_usec\` of BGSAVE, µs (lower is better)" "redis-cli BGSAVE; redis-cli INFO stats"
    md
    local dfork
    dfork=$(calc "(${R[srv_med/bash/fg]} - ${R[srv_med/bash/plain]}) * 1000 / (2 * $BASH_LOOPS)")
    md "- bash: \`$(show_env srv_bash_fg)\`; ${BASH_LOOPS} subshells and ${BASH_LOOPS} command substitutions ($((2 * BASH_LOOPS)) forks) per run; forkguard's log for \`bash -c '( : )'\`: ${R[srv_acts/bash]}."
    md "  The medians differ by $(fmt_f "$dfork" 1) µs per fork. forkguard's own phases take $(fmt_f "${R[srv_own/bash]}" 1) µs (prepare + parent) and"
    md "  $(fmt_f "${R[srv_own_child/bash]}" 1) µs (child) per fork (medians of its JSON log over 200 subshells, a separate run); the"
    md "  rest is the kernel's: copy-on-write page faults for the pages forkguard writes after the fork, in"
    md "  both processes (see the page-fault columns of the per-fork wall-clock table), a few µs each here."
    if [[ -n ${R[srv/pg/plain]:-} ]]; then
        md "- PostgreSQL (${R[srv_pg_version]}): the postmaster forks a backend for each connection and \`-C\` makes"
        md "  a new connection per transaction; \`-S\` (select-only) keeps the transaction itself short, so forking"
        md "  weighs as much as it can. Server: \`-c fsync=off -c synchronous_commit=off\`, on 127.0.0.1, as the"
        md "  postgres account, pgbench scale 1. A short verification run with forkguard's JSON log"
        md "  (\`pgbench -C -S -t 20 -c 1\`, then the server restarted without the log): ${R[srv_acts/pg]}."
    fi
    md "- Redis ${R[srv_redis_version]}: \`DEBUG POPULATE $REDIS_KEYS key 1000\` in each server"
    md "  (used_memory_rss ${R[srv_redis_rss/plain]} MiB without, ${R[srv_redis_rss/fg]} MiB with forkguard), \`--save \"\" --appendonly no\`;"
    md "  \`latest_fork_usec\` is Redis's own timing of its \`fork()\` call, so it includes forkguard's prepare and"
    md "  parent phases. Each round starts a fresh server for each side (fill, one BGSAVE, stop): two long-lived"
    md "  servers differ in their own memory layout by more than forkguard costs. The forkguard servers ran with"
    md "  forkguard's JSON log on (one line per fork) to prove the config was applied: ${R[srv_acts/redis]};"
    md "  its prepare + parent phases took $(fmt_f "${R[srv_own/redis]}" 1) µs per fork (median), $(fmt_f "$(calc "100 * ${R[srv_own/redis]} / ${R[srv_med/redis/plain]}")" 2)% of the"
    md "  median \`latest_fork_usec\` without it."
    md
}
# ------------------------------------------------------------------- plot --

write_plot() {
    local data=$BUILD/plot-calls.dat mdata=$BUILD/plot-mem.dat k v mib
    log "plot"
    {
        echo "# actions fg_calls atfork_calls fg_locks atfork_locks (instructions per fork over plain)"
        for k in 0 1 4 16; do
            local fg at fl al
            if ((k == 0)); then
                fg=${R[cgfork/0/fg_empty]}
                at=${R[cgfork/0/plain]}
                fl=$fg
                al=$at
            else
                fg=${R[cgfork/0/fg_calls$k]}
                at=${R[cgfork/0/atfork$k]}
                fl=${R[cgfork/0/fg_locks$k]}
                al=${R[cgfork/0/atlocks$k]}
            fi
            local b=${R[cgfork/0/plain]}
            echo "$k $(calc "$fg - $b") $(calc "$at - $b") $(calc "$fl - $b") $(calc "$al - $b")"
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
set title "instructions per fork over no preload,\nvs call and lock actions"
set xlabel "actions"
set ylabel "instructions per fork"
set xtics ("0" 0, "1" 1, "4" 2, "16" 3)
set xrange [-0.3:3.3]
set yrange [0:*]
plot "$data" using (\$0):2 with linespoints lw 2 pt 7 title "forkguard, calls", \
     "$data" using (\$0):3 with linespoints lw 2 pt 5 title "pthread_atfork floor, calls", \
     "$data" using (\$0):4 with linespoints lw 2 pt 9 title "forkguard, mutex locks", \
     "$data" using (\$0):5 with linespoints lw 2 pt 11 title "pthread_atfork floor, mutex locks"
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
    md "\`bench/atfork_floor.c\` (call and lock floors)."
    md
    machine_note
    md
    md "## Summary"
    md
    local base=${R[cgstart/$p/plain]}
    md "- Start-up of \`/bin/true\`: $(fmt_int "$base") instructions alone;" \
        "the minimal C interposer adds $(fmt_delta "$(calc "${R[cgstart/$p/minimal]} - $base")")," \
        "forkguard without a config $(fmt_delta "$(calc "${R[cgstart/$p/fg_noconf]} - $base")")," \
        "with an empty config $(fmt_delta "$(calc "${R[cgstart/$p/fg_empty]} - $base")")," \
        "with a config that applies to it (a stdio lock, a listen fd action)" \
        "$(fmt_delta "$(calc "${R[cgstart/$p/fg_active]} - $base")");" \
        "over the floor (the minimal interposer): $(fmt_delta "$(calc "${R[cgstart/$p/fg_noconf]} - ${R[cgstart/$p/minimal]}")")," \
        "$(fmt_delta "$(calc "${R[cgstart/$p/fg_empty]} - ${R[cgstart/$p/minimal]}")") (target: +30,000 each)."
    if has_variant fg_real; then
        md "- Start-up of \`/bin/true\` with config/forkguard.toml, which does not apply to it:" \
            "$(fmt_delta "$(calc "${R[cgstart/$p/fg_real_nc]} - $base")") instructions parsing it," \
            "$(fmt_delta "$(calc "${R[cgstart/$p/fg_real]} - $base")") with the plan cache (see the notes)."
    fi
    md "- Wall clock per spawn of \`/bin/true\`: $(fmt_f "${R[wstart_med/$p/plain]}" 0) µs alone," \
        "$(fmt_f "${R[wstart_med/$p/fg_empty]}" 0) µs with forkguard and an empty config (medians)."
    md "- Per fork, parent side: $(fmt_f "${R[cgfork/0/plain]}" 0) instructions without a preload;" \
        "forkguard adds $(fmt_f "$(calc "${R[cgfork/0/fg_empty]} - ${R[cgfork/0/plain]}")" 0) with an empty config" \
        "and $(fmt_f "$(calc "${R[cgfork/0/fg_calls4]} - ${R[cgfork/0/plain]}")" 0) with 4 call actions," \
        "where hand-written pthread_atfork handlers add $(fmt_f "$(calc "${R[cgfork/0/atfork4]} - ${R[cgfork/0/plain]}")" 0)."
    md "- Wall clock per fork (fork + \`_exit\` + \`waitpid\`): $(fmt_f "${R[wfork_med/0/plain]}" 0) µs alone," \
        "$(fmt_f "${R[wfork_med/0/fg_calls4]}" 0) µs with forkguard and 4 calls" \
        "(page faults per fork, parent / child: ${R[wfork_flt/0/plain]:-?} alone, ${R[wfork_flt/0/fg_calls4]:-?} with 4 calls);" \
        "with ${MEM_SIZES[-1]} MiB allocated $(fmt_int "${R[wfork_med/${MEM_SIZES[-1]}/plain]}") µs" \
        "and $(fmt_int "${R[wfork_med/${MEM_SIZES[-1]}/fg_calls4]}") µs (noisy: see the spread)."
    md "- Memory: peak RSS of \`/bin/true\` $(fmt_int "${R[rss_med/$p/plain]}") KiB alone," \
        "$(fmt_int "${R[rss_med/$p/fg_empty]}") KiB with forkguard and an empty config (medians);" \
        "private dirty memory of a running \`sleep\`" \
        "$(fmt_delta "$(calc "${R[dirty/fg_empty]} - ${R[dirty/plain]}")") KiB with forkguard and an empty config."
    md "- Lock actions, per fork, parent side: 4 mutexes in \`acquire\` add" \
        "$(fmt_f "$(calc "${R[cgfork/0/fg_locks4]} - ${R[cgfork/0/plain]}")" 0) instructions" \
        "where hand-written pthread_atfork handlers doing the same lock work add" \
        "$(fmt_f "$(calc "${R[cgfork/0/atlocks4]} - ${R[cgfork/0/plain]}")" 0); 16 mutexes:" \
        "$(fmt_f "$(calc "${R[cgfork/0/fg_locks16]} - ${R[cgfork/0/plain]}")" 0) against" \
        "$(fmt_f "$(calc "${R[cgfork/0/atlocks16]} - ${R[cgfork/0/plain]}")" 0)."
    local big=${FD_COUNTS[-1]}
    md "- Child phase, \`from = 3\` → close over $(fmt_int "$big") descriptors:" \
        "$(fmt_f "${R[cphase_med/close$big/fd_range]}" 1) µs with \`close_range\`," \
        "$(fmt_f "${R[cphase_med/close$big/fd_loop]}" 1) µs one descriptor at a time (\`kind = \"file\"\`) (medians)."
    if [[ -n ${R[srv_ratio/bash]:-} ]]; then
        local line
        line="- Real servers, forkguard ÷ no preload (median of alternating rounds): bash loop time $(fmt_f "${R[srv_ratio/bash]}" 3) (target ≤ 1.03)"
        [[ -n ${R[srv_ratio/pg]:-} ]] && line+=", PostgreSQL \`pgbench -C\` TPS $(fmt_f "${R[srv_ratio/pg]}" 3) (target ≥ 0.97)"
        [[ -n ${R[srv_ratio/redis]:-} ]] && line+=", Redis BGSAVE \`latest_fork_usec\` $(fmt_f "${R[srv_ratio/redis]}" 3) (target ≤ 1.02)"
        md "$line."
    fi
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
    if ((${#PENDING[@]} > 0)); then
        md "## Not measured yet"
        md
        local x
        for x in "${PENDING[@]}"; do md "- $x"; done
        md
    fi
    md "## Reproducing"
    md
    md '```sh'
    md "scripts/bench.sh            # full run, about 8 minutes on 2 CPUs (as root: servers, apt-get)"
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
