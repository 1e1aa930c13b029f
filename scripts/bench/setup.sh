# shellcheck shell=bash disable=SC2016  # backquotes in labels are Markdown
# scripts/bench/setup.sh: the configs and variants scripts/bench.sh measures
# (sourced, not run). Adding a row: write its config in write_configs, name
# it in define_variants, list it in a section (scripts/bench/local.sh).

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

