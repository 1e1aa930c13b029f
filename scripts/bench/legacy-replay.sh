#!/usr/bin/env bash
# scripts/bench/legacy-replay.sh: proof that scripts/bench_report.py computes
# the figures the former scripts/bench.sh computed (issue 10).
#
#   scripts/bench/legacy-replay.sh RAW [OUTDIR]
#
# Takes the former one-file scripts/bench.sh from git (commit LEGACY below),
# keeps every line of its statistics and Markdown (23 awk programs), and
# replaces only its measurements: the commands it ran (valgrind, the
# harnesses, the servers' clients, ...) become functions that print what
# the raw file RAW recorded for that run. Then it renders RAW both ways and
# diffs the two BENCHMARKS.md files and the plot data. Two edits of the old
# text are needed (shown by the script): the bash loop's timing lines (the
# raw file keeps the elapsed nanoseconds) and the list of mapped objects of
# the memory section (read from /proc of a process that no longer exists).
# Expected differences, by design: the new bash-loop table, the features
# section, "Not measured yet" and "Reproducing". Run it on the machine that
# measured RAW: the old script reads a few facts itself (CPU, kernel, tool
# versions, `postgres --version`) where the raw file has them recorded.
set -euo pipefail

LEGACY=290d90083442bf979169ef745130ef3306cbb20d # the last commit of the one-file bench.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RAW=$(realpath "${1:?usage: legacy-replay.sh RAW [OUTDIR]}")
OUT=${2:-$ROOT/target/bench/legacy-replay}
rm -rf "$OUT"
mkdir -p "$OUT/scripts" "$OUT/build" "$OUT/old" "$OUT/new"
cp -r "$ROOT/config" "$OUT/config"
git -C "$ROOT" show "$LEGACY:scripts/bench.sh" >"$OUT/scripts/bench.orig.sh"

# The old script without its last line (`main`), with the two edits.
python3 - "$OUT/scripts/bench.orig.sh" "$OUT/scripts/bench.sh" <<'EOF'
import sys
s = open(sys.argv[1]).read()
assert s.endswith("\nmain\n")
s = s[: -len("main\n")]
edits = [
    ('''            t0=$(date +%s%N)
            vrun "srv_bash_$v" /bin/bash -c "$loop" || die "bash loop failed"
            t1=$(date +%s%N)
            R[srv/bash/$v]+="$(calc "($t1 - $t0) / 1e6") "''',
     '''            R[srv/bash/$v]+="$(calc "${BASH_NS[$r/$v]} / 1e6") "'''),
    ('''        objs=$(awk 'NF >= 6 && $6 ~ /^\\// { print $6 }' "/proc/$pid/maps" | sort -u)''',
     '''        objs=${SLEEP_OBJS[$v]}'''),
]
for a, b in edits:
    assert s.count(a) == 1, a
    s = s.replace(a, b)
open(sys.argv[2], "w").write(s)
EOF
diff "$OUT/scripts/bench.orig.sh" "$OUT/scripts/bench.sh" >"$OUT/edits.diff" || true

# The raw records as bash assignments, keyed the way the old loops' local
# variables (p, v, r, mib, tag) name them.
python3 - "$RAW" >"$OUT/data.sh" <<'EOF'
import json, shlex, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
q = lambda s: shlex.quote(str(s))
out = []
def put(name, key, val):
    out.append(f"{name}[{q(key)}]={q(val)}")
def arr(name, vals):
    out.append(f"{name}=(" + " ".join(q(v) for v in vals) + ")")
cgq, chk, acts, notes = [], [], [], []
for r in recs:
    k = r["kind"]
    if k == "run":
        run = r
    elif k == "machine":
        m = r
    elif k == "note":
        notes.append(r["text"])
    elif k == "cg_start":
        cgq += [r["a"], r["b"]]
    elif k == "cg_fork":
        cgq += [r["t1"], r["t2"]]
        chk.append(r["chk"])
    elif k == "w_start":
        put("W_START", f"{r['prog']}/{r['v']}/{r['round']}", r["us"])
    elif k == "rss":
        put("RSS", f"{r['prog']}/{r['v']}",
            f"maxrss_kb_median={r['median']} maxrss_kb_min={r['min']} maxrss_kb_max={r['max']} self_hwm_kb={r['hwm']}")
    elif k == "sleep_mem":
        put("SLEEP_NUM", r["v"], f"{r['rss']} {r['rfile']} {r['ranon']} {r['dirty']}")
        objs = [] if r["extra"] in ("—", "(none)") else r["extra"].split(", ")
        put("SLEEP_OBJS", r["v"], "\n".join(f"/replay/{i:03d}/{o}" for i, o in enumerate(objs)))
    elif k == "lib":
        lib = r
    elif k == "w_fork":
        if r["round"] == "0":
            chk.append(r["chk"])
            put("WF", f"{r['mib']}/{r['v']}/0",
                f"per_fork_us={r['us']} parent_minflt={r['flt_parent']} child_minflt={r['flt_child']}")
        else:
            put("WF", f"{r['mib']}/{r['v']}/{r['round']}", f"per_fork_us={r['us']}")
    elif k == "acts" or k == "bash_acts":
        acts.append(r["text"])
    elif k == "child":
        key = f"{r['tag']}/{r['v']}/{r['round']}"
        put("CHILD_US", key, r["us"])
        put("CHILD_PH", key, r.get("phases", ""))
        put("CHILD_OK", key, r.get("ok", "0"))
    elif k == "bash_own":
        bash_own = r
    elif k == "bash_round":
        v = {"plain": "plain", "srv_bash_fg": "fg"}.get(r["v"])
        if v:
            put("BASH_NS", f"{r['round']}/{v}", r["ns"])
        bash_iters = r["iters"]
    elif k == "pg_round":
        put("PG_TPS", f"{r['round']}/{r['v']}", r["tps"])
    elif k == "pg_verify":
        pgv = r
    elif k == "redis_round":
        put("REDIS_USEC", f"{r['round']}/{r['v']}", r["usec"])
        if "rss_mib" in r:
            put("REDIS_RSS", r["v"], r["rss_mib"])
    elif k == "redis_meta":
        rm = r
arr("Q_CG", cgq)
arr("Q_CHK", chk)
arr("Q_ACTS", acts)
arr("REPLAY_NOTES", notes)
for name, val in [("REPLAY_MODE", run["mode"]), ("REPLAY_DATE", m["date"]), ("REPLAY_RUNTIME", m["runtime_s"]),
                  ("REPLAY_REV", m["rev"]), ("REPLAY_SHA", m["lib_sha"]), ("REPLAY_LIB_SRC", m["lib_src"]),
                  ("REPLAY_LOAD_START", m["load_start"]), ("REPLAY_LOAD_END", m["load_end"]),
                  ("LIB_SIZE", lib["size"]), ("LIB_NEEDED", lib["needed"]),
                  ("BASH_ITERS", bash_iters), ("REPLAY_BASH_ROUNDS", run["bash_rounds"]),
                  ("BASH_OWN_FORK", bash_own["fork"]), ("BASH_OWN_CHILD", bash_own["child"]),
                  ("PGV_FORK", pgv["fork_events"]), ("PGV_OK", pgv["child_ok"]), ("PGV_FAILED", pgv["child_failed"]),
                  ("RM_FORK", rm["fork_phases"]), ("RM_OK", rm["child_ok"]), ("RM_VERSION", rm["version"])]:
    out.append(f"{name}={q(val)}")
print("declare -A W_START RSS SLEEP_NUM SLEEP_OBJS WF CHILD_US CHILD_PH CHILD_OK BASH_NS PG_TPS REDIS_USEC REDIS_RSS")
print("\n".join(out))
EOF

cat >"$OUT/replay.sh" <<'EOF'
#!/usr/bin/env bash
# Generated by scripts/bench/legacy-replay.sh: the old bench.sh, measurements replayed.
OUT=$1
shift
# shellcheck disable=SC1091
source "$OUT/data.sh"
mode=()
[[ $REPLAY_MODE == --quick ]] && mode=(--quick)
export FORKGUARD_LIB=$REPLAY_LIB_SRC BENCH_DIR=$OUT/build BENCH_DOCS=$OUT/old
# shellcheck disable=SC1091
source "$OUT/scripts/bench.sh" "${mode[@]}"
LIB_SRC=$REPLAY_LIB_SRC
LOAD_START=$REPLAY_LOAD_START
BASH_LOOPS=$BASH_ITERS
BASH_ROUNDS=$REPLAY_BASH_ROUNDS
CLEAN_ENV[0]=fake_env
QI_CG=0 QI_CHK=0 QI_ACTS=0

# Measurements: what the raw file recorded.
cg() {
    CG=${Q_CG[QI_CG]}
    QI_CG=$((QI_CG + 1))
    : >"$BUILD/cg.stdout"
}
check_calls() { CHK=${Q_CHK[QI_CHK]}; QI_CHK=$((QI_CHK + 1)); }
verify_actions() { ACTS=${Q_ACTS[QI_ACTS]}; QI_ACTS=$((QI_ACTS + 1)); }
note() { :; }
note_stderr() { :; }
mem_summary() { echo "${SLEEP_NUM[$v]}"; }
log_lines() { # FILE EVENT FIELD VALUES...
    local f=$1 ev=$2 fld=$3 x
    shift 3
    for x in "$@"; do printf '{"event":"%s","%s":%s,"actions_failed":0}\n' "$ev" "$fld" "$x" >>"$f"; done
}
# fake_env [-u NAME]... [NAME=VALUE]... CMD ARGS...: env, for the harnesses
# the old sections ran (the caller's loop variables say which run it is).
fake_env() {
    local -A a=()
    while [[ $1 == -u ]]; do shift 2; done
    while [[ $1 == *=* ]]; do a[${1%%=*}]=${1#*=}; shift; done
    local logf=${a[FORKGUARD_LOG]:-}
    case ${1##*/} in
        spawnloop) echo "per_spawn_us=${W_START[$p/$v/$r]}" ;;
        peakrss) echo "${RSS[$p/$v]}" ;;
        forkloop)
            if [[ -n ${a[FGB_OPEN_FDS]:-} && -n $logf ]]; then
                # shellcheck disable=SC2086
                log_lines "$logf" child phase_us ${CHILD_PH[$tag/$v/$r]}
                sed -i "0,/\"phase_us\"/s//\"actions_ok\":${CHILD_OK[$tag/$v/$r]},\"phase_us\"/" "$logf"
            elif [[ -n ${a[FGB_OPEN_FDS]:-} ]]; then
                echo "per_fork_us=${CHILD_US[$tag/$v/$r]}"
            else
                echo "${WF[$mib/$v/$r]}"
            fi
            ;;
        bash)
            # shellcheck disable=SC2086
            log_lines "$logf" fork phase_us $BASH_OWN_FORK
            # shellcheck disable=SC2086
            log_lines "$logf" child phase_us $BASH_OWN_CHILD
            ;;
        *) command env "$@" ;;
    esac
}
runuser() { :; }
wait_for() { :; }
setsid() {
    [[ " $* " == *redis-server* ]] || echo "ready to accept connections"
}
pgbench() {
    [[ " $* " == *" -T "* ]] && echo "tps = ${PG_TPS[$r/$v]} (without initial connection time)"
    if [[ " $* " == *" -t 20 "* ]]; then
        # The verification run: the log the postmaster (started with
        # FORKGUARD_LOG=$pg/fg-verify.log) wrote.
        local -a ok=() failed=()
        local x
        read -r -a ok <<<"$PGV_OK"
        read -r -a failed <<<"$PGV_FAILED"
        for ((x = 0; x < PGV_FORK; x++)); do echo '{"event":"fork","actions_ok":0}' >>"$pg/fg-verify.log"; done
        for ((x = 0; x < ${#ok[@]}; x++)); do
            printf '{"event":"child","actions_ok":%s,"actions_failed":%s}\n' "${ok[x]}" "${failed[x]}" >>"$pg/fg-verify.log"
        done
    fi
    return 0
}
redis-cli() {
    local x
    case "$*" in
        *"INFO memory"*) echo "used_memory_rss:$((REDIS_RSS[$v] * 1048576))" ;;
        *"INFO persistence"*) printf 'rdb_bgsave_in_progress:0\nrdb_last_bgsave_status:ok\n' ;;
        *"INFO stats"*) echo "latest_fork_usec:${REDIS_USEC[$r/$v]}" ;;
        *BGSAVE*)
            # The log the forkguard servers (FORKGUARD_LOG=$rd/fg.log) wrote.
            if [[ $v == fg && ! -e $rd/fg.log ]]; then
                # shellcheck disable=SC2086
                log_lines "$rd/fg.log" fork phase_us $RM_FORK
                for x in $RM_OK; do printf '{"event":"child","phase_us":0,"actions_ok":%s}\n' "$x" >>"$rd/fg.log"; done
            fi
            ;;
    esac
}
redis-server() { echo "Redis server $RM_VERSION sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=0"; }
gnuplot() { cat >/dev/null; : >"$BUILD/bench-overhead.svg"; }
readelf() { local x; for x in ${LIB_NEEDED//, / }; do echo " 0x1 (NEEDED) Shared library: [$x]"; done; }
stat() { if [[ $1 == -c && $2 == %s ]]; then echo "$LIB_SIZE"; else command stat "$@"; fi; }
sha256sum() { echo "$REPLAY_SHA  $1"; }
git() {
    case "$*" in
        *rev-parse*) echo "${REPLAY_REV%%,*}" ;;
        *status*) [[ $REPLAY_REV == *uncommitted* ]] && echo " M x" ;;
    esac
    return 0
}
date() { if [[ $1 == -u ]]; then echo "$REPLAY_DATE"; else command date "$@"; fi; }
cut() { if [[ ${*: -1} == /proc/loadavg ]]; then echo "$REPLAY_LOAD_END"; else command cut "$@"; fi; }

mkdir -p "$BUILD"
printf '#!/bin/sh\nexit 0\n' >"$BUILD/forkloop"
cp "$BUILD/forkloop" "$BUILD/spawnloop"
chmod +x "$BUILD/forkloop" "$BUILD/spawnloop"
write_configs
define_variants
NOTES=("${REPLAY_NOTES[@]}")
section_startup_callgrind
section_startup_wall
section_memory
section_perfork_callgrind
section_perfork_wall
section_lock_actions
section_fd_actions
section_servers
write_plot
SECONDS=$REPLAY_RUNTIME
write_report
EOF
log() { echo "legacy-replay: $*" >&2; }
log "edits of the old script:"
cat "$OUT/edits.diff" >&2
log "rendering $RAW with the old script's statistics"
bash "$OUT/replay.sh" "$OUT" 2>"$OUT/old.log" || {
    cat "$OUT/old.log" >&2
    exit 1
}
log "rendering $RAW with scripts/bench_report.py"
python3 "$ROOT/scripts/bench_report.py" "$RAW" --out "$OUT/new" --plot-data "$OUT/new"
for f in plot-calls.dat plot-mem.dat; do
    if cmp -s "$OUT/build/$f" "$OUT/new/$f"; then log "$f: identical"; else
        log "$f: DIFFERS"
        diff "$OUT/build/$f" "$OUT/new/$f" >&2 || true
    fi
done
log "diff old new (BENCHMARKS.md):"
diff "$OUT/old/BENCHMARKS.md" "$OUT/new/BENCHMARKS.md"
