# shellcheck shell=bash disable=SC2016  # backquotes in labels are Markdown
# scripts/bench/features.sh: rows for the features of the lock-reach,
# held-lock and spawn/exit issues (issue 14), sourced by scripts/bench.sh.
#
# Each row's config is checked first with `forkguard check`: while the
# library does not know its key yet, the row is recorded as pending ("Not
# measured yet" in the report, with check's message) and nothing is run.
# The base rows (no preload, forkguard with an empty config, the harnesses'
# controls) need no new feature and are always measured. To add a row: a
# config in write_feature_configs, a variant in define_feature_variants,
# a feat_cg or feat_wall line in section_features.

# write_feature_configs: one config per feature, in $BUILD/feat-*.toml.
write_feature_configs() {
    printf 'version = 1\n\n[settings]\nlibc_locks = "acquire"\n' >"$BUILD/feat-libc-locks.toml"
    printf 'version = 1\n\n[settings]\nheld_locks = "acquire"\n' >"$BUILD/feat-held-acquire.toml"
    printf 'version = 1\n\n[settings]\nheld_locks = "reinit"\n' >"$BUILD/feat-held-reinit.toml"
    # log_exits writes to the log: its base is the same log without it.
    printf 'version = 1\n\n[settings]\nlog = "%s"\n' "$BUILD/feat-log.log" >"$BUILD/feat-log.toml"
    printf 'version = 1\n\n[settings]\nlog = "%s"\nlog_exits = true\n' "$BUILD/feat-log.log" \
        >"$BUILD/feat-log-exits.toml"
    # A static lock of glibc's that only its debug file names (SPEC 8.1, 8.2).
    printf 'version = 1\n\n[[lock]]\nsymbol = "libc.so.6:random.c:lock"\ntype = "futex"\nstrategy = "acquire"\n' \
        >"$BUILD/feat-debug-symbol.toml"
    printf 'version = 1\n\n[[fd]]\nselect = { kind = "listen" }\naction = "cloexec"\nspawn = true\n' \
        >"$BUILD/feat-spawn.toml"
    printf 'version = 1\n\n[settings]\nheld_locks = "acquire"\nlibc_locks = "acquire"\n' \
        >"$BUILD/feat-gunicorn.toml"
    # One [[python]] child entry (SPEC 8.7) that does nothing: what the
    # hooks' registration and call cost a Python program's fork.
    printf 'version = 1\n\n[[python]]\nphase = "child"\ncode = "pass"\n' >"$BUILD/feat-python.toml"
    # The OpenMP recipe of SPEC 8.8, as config/ ships it.
    printf 'version = 1\n\n[[call]]\nphase = "prepare"\nsymbol = "omp_pause_resource_all"\nargs = [2]\noptional = true\n' \
        >"$BUILD/feat-omp.toml"
}

define_feature_variants() {
    local f
    for f in libc-locks held-acquire held-reinit log log-exits debug-symbol spawn omp gunicorn python; do
        def_variant "feat_${f//-/_}" "forkguard, $(feature_label "$f")" 0 \
            "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$BUILD/feat-$f.toml"
    done
}

feature_label() {
    case $1 in
        libc-locks) echo 'libc_locks = "acquire"' ;;
        held-acquire) echo 'held_locks = "acquire"' ;;
        held-reinit) echo 'held_locks = "reinit" (tracking on)' ;;
        log) echo 'a log file (log = PATH)' ;;
        log-exits) echo 'a log file and log_exits = true' ;;
        debug-symbol) echo 'a futex lock named through libc6-dbg ("libc.so.6:random.c:lock")' ;;
        spawn) echo '`kind = "listen"` → cloexec, spawn = true' ;;
        omp) echo 'the OpenMP recipe (omp_pause_resource_all, args = [2])' ;;
        gunicorn) echo 'held_locks and libc_locks = "acquire"' ;;
        python) echo 'a `[[python]]` child entry (`code = "pass"`)' ;;
    esac
}

# What `forkguard check` said of each feature variant's config ("ok" or
# why not), and the rows skipped for it.
declare -A FEAT_CHECKED FEAT_SKIPPED
# feature_ok VARIANT TITLE: whether `forkguard check` accepts the variant's
# config; if not, adds TITLE to the variant's skipped rows and fails.
feature_ok() {
    local v=$1 title=$2 cfg msg
    [[ $v == feat_* ]] || return 0
    cfg=${VENV[$v]##*FORKGUARD_CONFIG=}
    if [[ -z ${FEAT_CHECKED[$v]+set} ]]; then
        if [[ ! -x $CLI ]]; then
            FEAT_CHECKED[$v]="no forkguard command at $CLI (set FORKGUARD_CLI): cannot tell whether its config is supported"
        elif msg=$("$CLI" check "$cfg" 2>&1 >/dev/null); then
            FEAT_CHECKED[$v]=ok
        else
            msg=${msg%%$'\n'*}
            FEAT_CHECKED[$v]="not supported by this build: \`forkguard check\` rejects its config (\`\` ${msg//"$BUILD/"/} \`\`)"
        fi
    fi
    [[ ${FEAT_CHECKED[$v]} == ok ]] && return 0
    FEAT_SKIPPED[$v]+="${FEAT_SKIPPED[$v]:+; }$title"
    return 1
}

# feat_cg GROUP WHAT VARIANT BASE N1 N2 CMD...: callgrind totals of CMD
# with N = N1 and N2 (the word N in CMD is replaced); per operation: their
# difference over N2 - N1, in the report. BASE=yes makes it the row the
# group's other rows are compared with. N1 = 0 measures CMD once (a
# start-up: "per operation" is the whole count).
feat_cg() {
    local group=$1 what=$2 v=$3 base=$4 n1=$5 n2=$6 t1=0 a
    shift 6
    feature_ok "$v" "$what" || return 0
    local -a c1=() c2=()
    for a in "$@"; do
        c1+=("${a/#N/$n1}")
        c2+=("${a/#N/$n2}")
    done
    ((n1 > 0)) && {
        cg "$v" "${c1[@]}"
        t1=$CG
    }
    cg "$v" "${c2[@]}"
    local shown="${*//"$BUILD/"/}"
    raw feature "group=$group" "what=$what" "v=$v" "base=$base" "cmd=${shown//"$ROOT/"/}" \
        "n1=$n1" "n2=$n2" "t1=$t1" "t2=$CG"
}

# feat_wall GROUP WHAT VARIANT ROUNDS FIELD CMD...: CMD's FIELD (from its
# "k=v ..." line) in ROUNDS runs; also its hangs= when it prints one.
feat_wall() {
    local group=$1 what=$2 v=$3 rounds=$4 fieldname=$5 r out a
    shift 5
    feature_ok "$v" "$what" || return 0
    local shown="${*//"$BUILD/"/}"
    local -a run=(vrun "$v")
    if [[ $1 == */peakrss ]]; then
        # peakrss gives the measured program only its -e assignments.
        local -a assign=()
        read -r -a assign <<<"${VENV[$v]}"
        run=("${CLEAN_ENV[@]}" "$1")
        shift
        for a in "${assign[@]}"; do run+=(-e "$a"); done
    fi
    for ((r = 0; r < rounds; r++)); do
        out=$("${run[@]}" "$@" 2>"$BUILD/feat.stderr") || {
            cat "$BUILD/feat.stderr" >&2
            die "$* failed (${VLABEL[$v]})"
        }
        note_stderr "$v" "$BUILD/feat.stderr" "$group"
        raw feature_value "group=$group" "what=$what" "v=$v" "cmd=${shown//"$ROOT/"/}" "round=$r" \
            "unit=$fieldname" "value=$(field "$fieldname" "$out")" "hangs=$(field hangs "$out" || echo 0)"
    done
}

section_features() {
    local v t k
    write_feature_configs
    define_feature_variants
    gcc -O2 -g -Wall -Wextra -Werror -fopenmp -o "$BUILD/ompfork" "$ROOT/bench/ompfork.c"
    log "features: start-up, callgrind"
    feat_cg startup "start-up of /bin/true" fg_empty yes 0 1 /bin/true
    feat_cg startup "start-up of /bin/true" feat_libc_locks no 0 1 /bin/true
    feat_cg startup "start-up of /bin/true" feat_debug_symbol no 0 1 /bin/true
    if [[ ! -e /usr/lib/debug/.build-id ]]; then
        note "libc6-dbg is not installed: the debug-file rows measure forkguard's look-up that finds nothing (apt-get install libc6-dbg)."
    fi
    log "features: per fork, callgrind"
    for v in fg_empty feat_libc_locks feat_held_acquire; do
        feat_cg fork "per fork (forkloop)" "$v" "$([[ $v == fg_empty ]] && echo yes || echo no)" \
            "$CG_N1" "$CG_N2" "$BUILD/forkloop" N
    done
    for v in feat_log feat_log_exits; do
        feat_cg fork-log "per fork (forkloop), with a log" "$v" "$([[ $v == feat_log ]] && echo yes || echo no)" \
            "$CG_N1" "$CG_N2" "$BUILD/forkloop" N
    done
    log "features: lock/unlock pairs, callgrind"
    for t in mutex rwlock-rd rwlock-wr spin sem; do
        for k in 1 2; do
            local what="$t lock/unlock pair"
            ((k == 2)) && what+=", 2 threads contending"
            for v in plain fg_empty feat_held_reinit; do
                feat_cg "pair-$t-$k" "$what" "$v" "$([[ $v == plain ]] && echo yes || echo no)" \
                    1000 2000 "$BUILD/lockpairs" "$t" N "$k"
            done
        done
    done
    log "features: per fork against threads alive and locks held, callgrind"
    for t in 0 8; do
        for k in 0 16 128; do
            for v in fg_empty feat_held_acquire; do
                feat_cg "threads-$t-$k" "per fork, $t threads waiting, $k mutexes held" "$v" \
                    "$([[ $v == fg_empty ]] && echo yes || echo no)" 50 100 \
                    "$BUILD/forkthreads" N "$t" "$k"
            done
        done
    done
    log "features: posix_spawn, callgrind"
    CG_EXTRA=(--trace-children-skip=/bin/true)
    for v in plain fg_empty feat_spawn; do
        feat_cg spawn "per posix_spawn of /bin/true" "$v" "$([[ $v == plain ]] && echo yes || echo no)" \
            20 40 "$BUILD/spawnloop" N /bin/true
    done
    CG_EXTRA=()
    : "${CG_EXTRA[@]}"
    log "features: wall clock (Python writer thread, [[python]], OpenMP, log_exits memory)"
    for v in feat_log feat_log_exits; do
        feat_wall log-exits-rss "peak RSS of forkloop 1000 (bench/peakrss)" "$v" 1 maxrss_kb_median \
            "$BUILD/peakrss" 5 "$BUILD/forkloop" 1000
    done
    for v in plain fg_empty feat_held_acquire; do
        feat_wall python "Python fork loop, writer thread (30 forks, 0.5 s timeout)" "$v" 3 per_fork_us \
            /usr/bin/python3 "$ROOT/bench/pyforkwriter.py" 30 0.5
    done
    for v in fg_empty feat_python; do
        feat_wall python-hooks "Python fork loop (1,000 forks), no thread" "$v" 3 per_fork_us \
            /usr/bin/python3 "$ROOT/bench/pyforkloop.py" 1000
    done
    feat_wall omp "OpenMP: fork, child without a parallel region" plain 3 per_fork_us \
        env OMP_WAIT_POLICY=passive "$BUILD/ompfork" 50 0
    feat_wall omp "OpenMP: fork, child with a parallel region (control: hangs)" plain 1 per_fork_us \
        env OMP_WAIT_POLICY=passive "$BUILD/ompfork" 3 1 500
    feat_wall omp "OpenMP: fork, child with a parallel region" feat_omp 3 per_fork_us \
        env OMP_WAIT_POLICY=passive "$BUILD/ompfork" 50 1
    feat_gunicorn
    for v in feat_debug_symbol feat_libc_locks feat_held_reinit feat_held_acquire feat_log_exits feat_spawn feat_omp feat_gunicorn feat_python; do
        if [[ -n ${FEAT_SKIPPED[$v]:-} ]]; then
            pending "${VLABEL[$v]}" "${FEAT_CHECKED[$v]}; rows skipped: ${FEAT_SKIPPED[$v]}."
        fi
    done
}

# feat_gunicorn: a prefork Python server (bench/wsgi_app.py under
# `gunicorn --preload`, 4 workers recycled every ~500 requests), loaded by
# `ab` in alternating rounds: no preload, forkguard with an empty config,
# and forkguard with held_locks and libc_locks (when supported).
feat_gunicorn() {
    local -a vs=(plain fg_empty) order=()
    local v r port out rps
    local requests=$((QUICK ? 1000 : 4000))
    if ! command -v gunicorn >/dev/null || ! command -v ab >/dev/null; then
        pending "gunicorn --preload, requests per second" "gunicorn or ab (apache2-utils) not installed"
        return 0
    fi
    feature_ok feat_gunicorn "gunicorn --preload, 4 workers, requests per second" && vs+=(feat_gunicorn)
    local -A gport gpid
    SCRATCH=$(mktemp -d /tmp/fgb-gunicorn.XXXXXX)
    trap cleanup_servers EXIT
    for v in "${vs[@]}"; do
        port=$(free_port)
        # env then setsid exec gunicorn: $! is the master, leader of its
        # own process group (cleanup_servers kills the group).
        local -a assign=()
        read -r -a assign <<<"${VENV[$v]}"
        "${CLEAN_ENV[@]}" "${assign[@]}" setsid gunicorn --preload -w 4 --max-requests 500 --max-requests-jitter 50 \
            -b "127.0.0.1:$port" --chdir "$ROOT/bench" wsgi_app:app >"$SCRATCH/$v.log" 2>&1 &
        gpid[$v]=$!
        gport[$v]=$port
        SERVER_PIDS+=("${gpid[$v]}")
        wait_for 120 ab -q -n 1 "http://127.0.0.1:$port/" || {
            cat "$SCRATCH/$v.log" >&2
            die "gunicorn (${VLABEL[$v]}) did not start"
        }
    done
    log "features: gunicorn, ab -n $requests -c 8, $SERVER_ROUNDS rounds x ${#vs[@]} variants"
    for ((r = 0; r < SERVER_ROUNDS; r++)); do
        mapfile -t order < <(rotated "$r" "${vs[@]}")
        for v in "${order[@]}"; do
            out=$(ab -q -n "$requests" -c 8 "http://127.0.0.1:${gport[$v]}/" 2>&1) || die "ab failed (${VLABEL[$v]}): $out"
            rps=$(awk '/^Requests per second:/ { print $4; exit }' <<<"$out")
            [[ -n $rps ]] || die "no requests per second in ab's output: $out"
            raw feature_value group=gunicorn "what=gunicorn --preload, 4 workers recycled, ab -n $requests -c 8" \
                "v=$v" "cmd=gunicorn --preload -w 4 --max-requests 500 wsgi_app:app" "round=$r" \
                unit=rps "value=$rps" hangs=0
        done
    done
    cleanup_servers
    trap - EXIT
}
