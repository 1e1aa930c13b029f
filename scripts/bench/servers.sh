# shellcheck shell=bash
# scripts/bench/servers.sh: real programs with and without forkguard: the
# bash loop, PostgreSQL (pgbench -C) and Redis (BGSAVE), in alternating
# rounds (sourced by scripts/bench.sh; raw records only).

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

# The bash loop, tight method (scripts/bash-rounds.sh's): BASH_ROUNDS rounds
# of BASH_ITERS iterations, no preload, the minimal interposer, forkguard
# with an empty config and with the bench's bash config, rotated.
server_bash() {
    local cfg=$BUILD/server-bash.toml
    log "servers: bash loop, $BASH_ROUNDS rounds of $BASH_ITERS iterations x 4 variants"
    def_variant srv_bash_fg "forkguard, bash config" 0 "LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$cfg"
    verify_actions srv_bash_fg /bin/bash -c '( : )'
    raw bash_acts "text=$ACTS"
    # forkguard's own time per fork, from its JSON log: 200 subshells.
    local logf=$BUILD/bash-phases.log
    rm -f "$logf"
    vrun srv_bash_fg "FORKGUARD_LOG=$logf" FORKGUARD_LOG_FORMAT=json \
        /bin/bash -c 'for ((i = 0; i < 200; i++)); do ( : ); done' || die "bash with the JSON log failed"
    raw bash_own "fork=$(json_values "$logf" fork phase_us | paste -sd' ' -)" \
        "child=$(json_values "$logf" child phase_us | paste -sd' ' -)"
    bash_loop_rounds "$BASH_ROUNDS" "$BASH_ITERS" plain minimal fg_empty srv_bash_fg
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
    local -A port PG_PID
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
    local -a fgenv=("LD_PRELOAD=$LIB" "FORKGUARD_CONFIG=$cfg")
    # First, a short run with forkguard's JSON log: proof that the postmaster
    # applies the config at each fork (then restarted without the log).
    pg_start fg "${fgenv[@]}" "FORKGUARD_LOG=$pg/fg-verify.log" FORKGUARD_LOG_FORMAT=json
    pgbench -i -q -s 1 -h 127.0.0.1 -p "${port[fg]}" -U postgres postgres >"$pg/init-fg.log" 2>&1 ||
        die "pgbench -i failed: $(cat "$pg/init-fg.log")"
    pgbench -C -S -n -t 20 -c 1 -h 127.0.0.1 -p "${port[fg]}" -U postgres postgres >/dev/null 2>&1 ||
        die "pgbench (verification run) failed"
    pg_stop fg
    local nchild
    nchild=$(json_values "$pg/fg-verify.log" child actions_ok | grep -c . || true)
    raw pg_verify "fork_events=$(json_values "$pg/fg-verify.log" fork actions_ok | grep -c . || true)" \
        "child_events=$nchild" "child_ok=$(json_values "$pg/fg-verify.log" child actions_ok | paste -sd' ' -)" \
        "child_failed=$(json_values "$pg/fg-verify.log" child actions_failed | paste -sd' ' -)"
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
            raw pg_round "round=$r" "v=$v" "tps=$tps"
        done
    done
    pg_stop fg
    pg_stop plain
    raw pg_meta "version=$("$bindir/postgres" --version)"
}

# redis_once SIDE ROUND: start a fresh redis-server (with forkguard for
# SIDE fg), fill it, BGSAVE once, record latest_fork_usec, stop it. A fresh
# server per measurement: two long-lived servers differ in their own memory
# layout by more than forkguard costs (seen: one server's forks 30% slower
# than the other's, whichever had the preload).
redis_once() {
    local v=$1 r=$2 rd=$SCRATCH/redis port pid
    local -a env=() rec=("round=$r" "v=$v")
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
    ((r == 0)) && rec+=("rss_mib=$(redis-cli -p "$port" INFO memory | awk -F: '/^used_memory_rss:/ { printf "%.0f", $2 / 1048576 }')")
    redis-cli -p "$port" BGSAVE >/dev/null
    sleep 0.2
    wait_for 120 eval "redis-cli -p $port INFO persistence | grep -q '^rdb_bgsave_in_progress:0'" ||
        die "BGSAVE ($v) did not finish"
    redis-cli -p "$port" INFO persistence | grep -q '^rdb_last_bgsave_status:ok' || die "BGSAVE ($v) failed"
    raw redis_round "${rec[@]}" "usec=$(redis-cli -p "$port" INFO stats | awk -F: '/^latest_fork_usec:/ { print $2 + 0 }')"
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
    local nchild
    nchild=$(json_values "$rd/fg.log" child phase_us | grep -c . || true)
    ((nchild >= SERVER_ROUNDS)) || note "WARNING: Redis with forkguard: $nchild child events for $SERVER_ROUNDS BGSAVEs"
    raw redis_meta "fork_events=$(json_values "$rd/fg.log" fork phase_us | grep -c . || true)" \
        "child_events=$nchild" "fork_phases=$(json_values "$rd/fg.log" fork phase_us | paste -sd' ' -)" \
        "child_ok=$(json_values "$rd/fg.log" child actions_ok | paste -sd' ' -)" \
        "version=$(redis-server --version | awk '{ print $3 }')"
}

section_servers() {
    SCRATCH=$(mktemp -d /tmp/fgb-servers.XXXXXX)
    chmod 755 "$SCRATCH"
    trap cleanup_servers EXIT
    server_bash
    server_postgres
    server_redis
    cleanup_servers
    trap - EXIT
}
