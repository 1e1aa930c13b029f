# shellcheck shell=bash disable=SC2034  # CG, CHK, ACTS: results for the caller
# scripts/bench/lib.sh: helpers of scripts/bench.sh (sourced, not run).
#
# Measuring only: every figure goes to the raw file ($RAW, one JSON object
# a line, written by `raw`); scripts/bench_report.py turns that file into
# statistics, docs/BENCHMARKS.md and the plot. Expects from bench.sh: ROOT,
# BUILD, LIB, LIB_SRC, REAL_CONFIG, RAW, DO_BUILD, DO_INSTALL.

log() { echo "bench.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# ------------------------------------------------------------ raw records --

# json_str VAR STRING: VAR = STRING as a JSON string literal.
json_str() {
    local -n out_=$1
    local s=$2
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//[$'\001'-$'\037']/ }
    out_="\"$s\""
}

# raw KIND NAME=VALUE...: one record of the raw file. Values are strings,
# written as the tools printed them (the report parses them).
raw() {
    local line k v kv
    json_str k "$1"
    line="{\"kind\":$k"
    shift
    for kv in "$@"; do
        json_str k "${kv%%=*}"
        json_str v "${kv#*=}"
        line+=",$k:$v"
    done
    printf '%s}\n' "$line" >>"$RAW"
}

# Notes gathered while measuring: printed in the report and at the end.
declare -A NOTED
NOTE_COUNT=0
note() {
    [[ -n ${NOTED[$1]+set} ]] && return 0
    NOTED[$1]=1
    NOTE_COUNT=$((NOTE_COUNT + 1))
    raw note "text=$1"
    log "note: $1"
}

# pending TITLE TEXT: a row not measured (listed in the report's "Not
# measured yet", never given numbers).
pending() {
    raw pending "title=$1" "text=$2"
    log "not measured: $1: $2"
}

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

# fmt_f N DECIMALS: for the few cells made while measuring ("calls seen").
fmt_f() { awk -v n="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, n }'; }

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
    command -v python3 >/dev/null || missing+=(python3)
    compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v gunicorn >/dev/null || missing+=(gunicorn)
    command -v ab >/dev/null || missing+=(apache2-utils)
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

# The C harnesses and floors under bench/.
HARNESSES=(forkloop spawnloop peakrss minimal_interposer atfork_floor lockpairs forkthreads)

# build_harnesses NAME...: build these harnesses into $BUILD.
build_harnesses() {
    local cflags=(-O2 -g -Wall -Wextra -Werror) h
    mkdir -p "$BUILD"
    log "building C harnesses into $BUILD: $*"
    for h in "$@"; do
        case $h in
            forkloop) gcc "${cflags[@]}" -rdynamic -o "$BUILD/forkloop" "$ROOT/bench/forkloop.c" ;;
            spawnloop) gcc "${cflags[@]}" -o "$BUILD/spawnloop" "$ROOT/bench/spawnloop.c" ;;
            peakrss) gcc "${cflags[@]}" -static -o "$BUILD/peakrss" "$ROOT/bench/peakrss.c" ;;
            minimal_interposer)
                gcc "${cflags[@]}" -shared -fPIC -o "$BUILD/minimal_interposer.so" \
                    "$ROOT/bench/minimal_interposer.c" -ldl
                ;;
            atfork_floor)
                gcc "${cflags[@]}" -shared -fPIC -o "$BUILD/atfork_floor.so" \
                    "$ROOT/bench/atfork_floor.c" -ldl -lpthread
                ;;
            lockpairs) gcc "${cflags[@]}" -rdynamic -o "$BUILD/lockpairs" "$ROOT/bench/lockpairs.c" -lpthread ;;
            forkthreads) gcc "${cflags[@]}" -rdynamic -o "$BUILD/forkthreads" "$ROOT/bench/forkthreads.c" -lpthread ;;
            *) die "unknown harness: $h" ;;
        esac
    done
}

# --------------------------------------------------------------- variants --

# A variant is a way to start the measured program: a label and the
# environment assignments given to that program only. Each is recorded in
# the raw file (label, environment as the tables show it).
declare -A VLABEL VENV VCALLS
def_variant() {
    local id=$1 label=$2 calls=$3
    shift 3
    VLABEL[$id]=$label
    VCALLS[$id]=$calls
    VENV[$id]="$*"
    raw variant "id=$id" "label=$label" "env=$(show_env "$id")" "calls=$calls"
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

# expected_calls K -> "PARENT CHILD": calls forkloop should see per fork
# (parent: prepare + parent actions; child: prepare + child actions).
expected_calls() {
    local k=$1
    local pre=$(((k + 2) / 3)) par=$(((k + 1) / 3)) chi=$((k / 3))
    echo "$((pre + par)) $((pre + chi))"
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
CG_EXTRA=() # more valgrind options, for the next cg calls
cg() {
    local v=$1 err=$BUILD/cg.stderr
    shift
    local -a assign=()
    read -r -a assign <<<"${VENV[$v]}"
    if ! "${CLEAN_ENV[@]}" valgrind --tool=callgrind --trace-children=yes "${CG_EXTRA[@]}" \
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
