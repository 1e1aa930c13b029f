# shellcheck shell=bash
# scripts/bench/local.sh: the sections that run bench/'s harnesses
# (sourced by scripts/bench.sh). Each writes raw records only; the tables
# are scripts/bench_report.py's. A section's rows are the variants it is
# given, in that order: to add a row, add a variant (scripts/bench/setup.sh)
# to the section's list.

section_startup_callgrind() {
    local -a vs=(plain plain_var minimal fg_noconf fg_empty fg_active)
    has_variant fg_real && vs+=(fg_real_nc fg_real)
    local p v a
    log "start-up, callgrind"
    for p in "/bin/true" "/bin/bash -c :"; do
        local -a cmd=()
        read -r -a cmd <<<"$p"
        for v in "${vs[@]}"; do
            cg "$v" "${cmd[@]}"
            a=$CG
            cg "$v" "${cmd[@]}"
            raw cg_start "prog=$p" "v=$v" "a=$a" "b=$CG"
        done
    done
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
                raw w_start "prog=$p" "v=$v" "round=$r" "us=$(field per_spawn_us "$out")"
            done
        done
    done
}

# mem_summary PID -> "RSS RSS_FILE RSS_ANON PRIVATE_DIRTY" in KiB
mem_summary() {
    awk '/^RssFile:/ { f = $2 } /^RssAnon:/ { a = $2 } /^Private_Dirty:/ { d = $2 }
         END { print f + a, f + 0, a + 0, d + 0 }' "/proc/$1/status" "/proc/$1/smaps_rollup"
}

section_memory() {
    local -a vs=(plain minimal fg_noconf fg_empty)
    has_variant fg_real && vs+=(fg_real)
    local p v out
    log "memory"
    for p in "/bin/true" "/bin/bash -c :"; do
        local -a cmd=()
        read -r -a cmd <<<"$p"
        for v in "${vs[@]}"; do
            local -a eargs=() assign=()
            read -r -a assign <<<"${VENV[$v]}"
            local kv
            for kv in "${assign[@]}"; do eargs+=(-e "$kv"); done
            out=$("${CLEAN_ENV[@]}" "$BUILD/peakrss" "${eargs[@]}" "$PEAKRSS_RUNS" "${cmd[@]}")
            raw rss "prog=$p" "v=$v" "median=$(field maxrss_kb_median "$out")" \
                "min=$(field maxrss_kb_min "$out")" "max=$(field maxrss_kb_max "$out")" \
                "hwm=$(field self_hwm_kb "$out")"
        done
    done

    # What the preload adds to a running process, from /proc/PID/smaps_rollup
    # and /proc/PID/maps of a `sleep` started with each variant.
    local base_objs=""
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
            extra="—"
        else
            extra=$(comm -13 <(echo "$base_objs") <(echo "$objs") | xargs -r -n1 basename | paste -sd, - | sed 's/,/, /g')
            [[ -z $extra ]] && extra="(none)"
            local pre=${VENV[$v]%% *}
            pre=${pre#LD_PRELOAD=}
            [[ $extra == *"$(basename "$pre")"* ]] ||
                note "WARNING: ${VLABEL[$v]}: $(basename "$pre") not in the maps of sleep after 0.5 s; its memory row is wrong"
        fi
        raw sleep_mem "v=$v" "rss=$rss" "rfile=$rfile" "ranon=$ranon" "dirty=$dirty" "extra=$extra"
    done
    local needed
    needed=$(readelf -d "$LIB" | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }' | paste -sd, - | sed 's/,/, /g')
    raw lib "size=$(stat -c %s "$LIB")" "needed=$needed"
}

# per_fork_cg TABLE VARIANT MIB N1 N2 [PROGRAM]: callgrind totals of
# PROGRAM (default forkloop) N1 and N2 forks (per fork: their difference,
# in the report), with the calls check, as a cg_fork record of TABLE.
per_fork_cg() {
    local table=$1 v=$2 mib=$3 n1=$4 n2=$5 prog=${6:-$BUILD/forkloop} t1 chk
    cg "$v" "$prog" "$n1" "$mib"
    t1=$CG
    check_calls "$v" "$(cat "$BUILD/cg.stdout")"
    chk=$CHK
    cg "$v" "$prog" "$n2" "$mib"
    raw cg_fork "table=$table" "v=$v" "mib=$mib" "n1=$n1" "n2=$n2" "t1=$t1" "t2=$CG" "chk=$chk"
}

section_perfork_callgrind() {
    local -a vs=(plain minimal atfork1 atfork4 atfork16 fg_noconf fg_empty fg_calls1 fg_calls4 fg_calls16 fg_disabled4)
    local v mib n1 n2
    log "per fork, callgrind: ${#vs[@]} variants, forkloop $CG_N1 and $CG_N2"
    for v in "${vs[@]}"; do
        per_fork_cg calls "$v" 0 "$CG_N1" "$CG_N2"
    done
    for mib in "${MEM_SIZES[@]}"; do
        read -r n1 n2 <<<"$(mem_cg_n "$mib")"
        log "per fork, callgrind, $mib MiB resident: forkloop $n1 and $n2"
        for v in plain fg_calls4; do
            per_fork_cg mem "$v" "$mib" "$n1" "$n2"
        done
    done
}

# wall_forks MIB N ROUNDS VARIANT...: alternating runs of forkloop, one
# w_fork record per run (the first round also has the calls check and the
# page faults).
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
            local -a first=()
            if ((r == 0)); then
                check_calls "$v" "$out"
                first=("chk=$CHK" "flt_parent=$(field parent_minflt "$out")" "flt_child=$(field child_minflt "$out")")
            fi
            raw w_fork "v=$v" "mib=$mib" "n=$n" "round=$r" "us=$(field per_fork_us "$out")" "${first[@]}"
        done
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
}

section_lock_actions() {
    local -a vs=(atlocks1 atlocks4 atlocks16 fg_locks1 fg_locks4 fg_locks16 fg_fds4 fg_child)
    local v
    log "per fork, callgrind: lock, fd and child actions"
    for v in "${vs[@]}"; do
        per_fork_cg locks "$v" 0 "$CG_N1" "$CG_N2"
        if [[ $v == fg_* ]]; then
            verify_actions "$v"
            raw acts "v=$v" "text=$ACTS"
        fi
    done
}

# child_runs TAG FDS KIND FORKS VARIANT...: alternating rounds of
# `forkloop FORKS` with FDS extra descriptors of KIND open. Each round and
# variant runs twice: once with forkguard's JSON log (the child events'
# phase_us) and once without (the per-fork wall clock; logging costs a file
# open and write per line, kept out of the wall clock).
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
            local -a rec=("tag=$tag" "fds=$fds" "fdkind=$kind" "n=$n" "v=$v" "round=$r"
                "us=$(field per_fork_us "$out")")
            if [[ $v == plain ]]; then
                raw child "${rec[@]}"
                continue
            fi
            rm -f "$logf"
            vrun "$v" "FGB_OPEN_FDS=$fds" "FGB_OPEN_KIND=$kind" "FORKGUARD_LOG=$logf" \
                FORKGUARD_LOG_FORMAT=json "$BUILD/forkloop" "$n" >/dev/null 2>"$BUILD/child.stderr" ||
                die "forkloop with the JSON log failed: ${VLABEL[$v]}, $fds descriptors"
            local failed
            failed=$(json_values "$logf" child actions_failed | sort -n | tail -n 1)
            [[ -z $failed ]] && note "WARNING: ${VLABEL[$v]}, $fds descriptors: no child event in forkguard's log"
            [[ -n $failed && $failed != 0 ]] &&
                note "WARNING: ${VLABEL[$v]}, $fds descriptors: failed actions in the child: $(json_values "$logf" child errors | head -n 1)"
            rec+=("phases=$(json_values "$logf" child phase_us | paste -sd' ' -)")
            ((r == 0)) && rec+=("ok=$(json_values "$logf" child actions_ok | head -n 1)")
            raw child "${rec[@]}"
        done
    done
}

section_fd_actions() {
    local fds n
    for fds in "${FD_COUNTS[@]}"; do
        n=$((fds >= 10000 ? (QUICK ? 10 : 30) : (QUICK ? 100 : 300)))
        log "child phase: close over $fds descriptors, $CHILD_ROUNDS rounds x forkloop $n"
        child_runs "close$fds" "$fds" file "$n" plain fd_range fd_loop
    done
    n=$((QUICK ? 100 : 300))
    log "child phase: kind and peer selectors over 1000 sockets"
    child_runs sel1000 1000 udp "$n" plain fd_listen fd_peer
    log "child phase: 4 fd actions over 10 descriptors, [child] block"
    child_runs fds10 10 file "$n" plain fg_fds4 fg_child
}
