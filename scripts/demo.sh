#!/usr/bin/env bash
# forkguard's main job on real programs, without and with forkguard, using
# the shipped config/demo.toml. Builds what it needs; installs gcc and
# python3 with apt-get if they are missing (Debian, as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
dpkg -s libc6-dbg >/dev/null 2>&1 || need+=(libc6-dbg)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql) # scene 10
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
fi

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '  %s\n' "$*"; }

bold "Building forkguard (cargo build --release --workspace)"
cargo build --release --workspace -q
fg=target/release/forkguard
out=target/demo
mkdir -p "$out"
gcc -O1 -g -pthread -o "$out/cache_server" scripts/demo/cache_server.c
gcc -O1 -g -pthread -o "$out/env_server" scripts/demo/env_server.c
# Config files must not be group/world-writable: copy with a known mode.
install -m 0644 config/demo.toml "$out/demo.toml"
install -m 0644 config/libc-locks.toml "$out/libc-locks.toml"
cfg=$out/demo.toml
# The interpreter itself, not a wrapper script (pyenv's python3 is a bash shim).
py=$(python3 -c 'import sys; print(sys.executable)')
"$fg" check "$cfg" | sed 's/^/  /'

bold "1. A worker deadlocks on a lock another thread held at fork()"
say "cache_server forks while its refresher thread is inside a (static) cache mutex."
say "without forkguard (killed after 5 s if stuck):"
set +e
timeout 5 "$out/cache_server" 2>&1 | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 124 ]; then say "-> the worker hung on the inherited lock (timeout)"; else say "-> exit $rc"; fi
say "with forkguard ([[lock]] symbol = \"cache_lock\", strategy = \"acquire\"):"
set +e
timeout 5 "$fg" run -c "$cfg" -- "$out/cache_server" 2>&1 | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 0 ]; then say "-> the worker finished"; else say "-> exit $rc"; fi

bold "2. A helper process keeps the server's listening port"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for mode in without with; do
    say "$mode forkguard:"
    if [ "$mode" = with ]; then
        "$fg" run -c "$cfg" -- "$py" scripts/demo/listener.py "$port" "$out/helper.pid" 2>&1 | grep -v '^forkguard' | sed 's/^/    /'
    else
        "$py" scripts/demo/listener.py "$port" "$out/helper.pid" | sed 's/^/    /'
    fi
    "$py" scripts/demo/restart.py "$port" | sed 's/^/    /' || true
    kill "$(cat "$out/helper.pid")" 2>/dev/null || true
    sleep 0.2
done

bold "3. forkpty and daemon get their phases too (glibc forks them without fork())"
"$fg" run -c "$cfg" -- "$py" -c '
import os, pty
pid, fd = pty.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("python: pty.fork() done")
' 2>&1 | sed 's/^/    /'
"$fg" run -c "$cfg" -- "$py" -c '
import ctypes, os, sys
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    ctypes.CDLL(None).daemon(1, 1)
    os.write(w, b"daemon running as %d\n" % os.getpid())
    os._exit(0)
os.close(w)
print("python:", os.read(r, 100).decode().strip())
' 2>&1 | sed 's/^/    /'
say "(daemon: prepare ran in the caller's child, the child phase in the daemon it became)"

bold "4. glibc's own locks: setenv and localtime in a thread while workers fork"
say "env_server's reload thread calls setenv and localtime_r in a loop; each worker calls them too."
say "without forkguard:"
set +e
"$out/env_server" 20 2>&1 | sed 's/^/    /'
say "with forkguard (config/libc-locks.toml: [settings] libc_locks = \"acquire\"):"
"$fg" run -c "$out/libc-locks.toml" -- "$out/env_server" 20 2>&1 | sed 's/^/    /'
set -e
say "(forkguard check --program lists the glibc locks it found: $fg check config/libc-locks.toml --program $out/env_server)"

# forkguard why on a hung worker (SPEC 8.6). A separate block: the glibc
# lock scene of the libc_locks work shows the same program with the fix.
why_scene() {
    bold "5. forkguard why: which lock a hung worker waits on, and the line that prevents it"
    say "env_worker: a thread calls setenv in a loop while the main thread forks workers that call setenv."
    gcc -O1 -g -pthread -o "$out/env_worker" scripts/demo/env_worker.c
    "$out/env_worker" >"$out/env_worker.out" &
    local parent=$! pid="" i
    for ((i = 0; i < 200; i++)); do
        pid=$(awk '/^hung/ {print $2}' "$out/env_worker.out")
        [ -n "$pid" ] && break
        kill -0 "$parent" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$pid" ]; then
        say "worker $pid hung; forkguard why $pid:"
        "$fg" why "$pid" | sed 's/^/    /' || true
        kill -KILL "$pid" 2>/dev/null || true
    else
        say "no worker hung this time: $(cat "$out/env_worker.out")"
    fi
    kill -KILL "$parent" 2>/dev/null || true
    wait "$parent" 2>/dev/null || true
}
why_scene

bold "6. held_locks: A C++ cache's heap std::mutex, which no config can name"
g++ -O1 -g -pthread -o "$out/held_cache" tests/c/held_cache.cpp
say "held_cache forks 5 workers while a thread refreshes a new-ed Cache under its std::mutex."
say "without forkguard (each worker killed after 0.5 s if stuck):"
"$out/held_cache" 5 500 2>&1 | sed 's/^/    /'
say "forkguard audit --suggest: which lock, taken where, by which thread, and a config:"
"$fg" audit --suggest "$out/held.toml" -- "$out/held_cache" 3 500 2>&1 | grep -E 'summary|taken in|wrote' | sed 's/^/    /'
sed 's/^/    | /' "$out/held.toml"
say "with that config:"
"$fg" run -c "$out/held.toml" -- "$out/held_cache" 20 5000 2>&1 | sed 's/^/    /'

bold "7. held_locks: Python workers forked while a logging thread writes"
say "a thread logs to a file (logging.FileHandler) while the main thread forks 5 workers that log too."
say "without forkguard (each worker killed after 0.5 s if stuck):"
"$py" tests/py/held.py logging 5 0.5 "$out" 2>&1 | sed 's/^/    /'
printf 'version = 1\n[settings]\nheld_locks = "reinit"\n' > "$out/held-py.toml"
chmod 0644 "$out/held-py.toml"
say "with held_locks = \"reinit\" (CPython's locks are binary semaphores, freed in each child):"
"$fg" run -c "$out/held-py.toml" -- "$py" tests/py/held.py logging 20 5 "$out" 2>&1 | sed 's/^/    /'
say "and multiprocessing.Pool (fork) while a thread writes to a buffered file:"
"$fg" run -c "$out/held-py.toml" -- "$py" tests/py/held.py pool 5 5 "$out" 2>&1 | sed 's/^/    /'
# spawn = true (SPEC 8.5): a helper started with system() by a Python server.
spawn_scene() {
    local port mode
    bold "8. A helper started with system() keeps the port (no fork() in the server)"
    port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    for mode in without with; do
        say "$mode forkguard:"
        if [ "$mode" = with ]; then
            say "([[fd]] select = { kind = \"listen\" }, action = \"cloexec\", spawn = true)"
            "$fg" run -c "$cfg" -- "$py" scripts/demo/spawn_helper.py "$port" "$out/helper.pid" 2>&1 | sed 's/^/    /'
        else
            "$py" scripts/demo/spawn_helper.py "$port" "$out/helper.pid" | sed 's/^/    /'
        fi
        "$py" scripts/demo/restart.py "$port" | sed 's/^/    /' || true
        kill "$(cat "$out/helper.pid")" 2>/dev/null || true
        sleep 0.2
    done
}
spawn_scene

# log_exits (SPEC 8.5): a prefork server whose worker crashes.
exits_scene() {
    bold "9. A worker that crashes, seen in the log (log_exits = true)"
    "$fg" run -c "$cfg" -- "$py" scripts/demo/crashy_workers.py 2>&1 | grep -v ' fork -> \| child of \|config \| fd actions: \| warning: ' | sed 's/^/    /'
    say "(the server reaped its workers itself: forkguard only looked, with pidfds)"
}
exits_scene

# [[python]] (SPEC 8.7): a SQLAlchemy engine in gunicorn --preload workers,
# against a PostgreSQL of the scene's own (a temp dir, a free port).
sqla_pg_dir="" sqla_pg_ctl="" sqla_gunicorn="" sqla_port=""
sqla_cleanup() {
    if [ -n "$sqla_gunicorn" ]; then
        kill -KILL -- "-$sqla_gunicorn" 2>/dev/null || true
        wait "$sqla_gunicorn" 2>/dev/null || true
    fi
    if [ -n "$sqla_pg_dir" ]; then
        sqla_as_pg "$sqla_pg_ctl" -D "$sqla_pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$sqla_pg_dir"
    fi
    sqla_gunicorn="" sqla_pg_dir=""
}
# initdb and postgres refuse to run as root.
sqla_as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
sqla_install() {
    "$py" -c 'import sqlalchemy, psycopg2, gunicorn' 2>/dev/null && return 0
    "$py" -m pip --version >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q </dev/null >/dev/null &&
            apt-get install -y -q --no-install-recommends python3-pip </dev/null >/dev/null
    } || return 1
    say "installing sqlalchemy, psycopg2-binary and gunicorn (pip)"
    # Debian's own python3 needs --break-system-packages (PEP 668).
    "$py" -m pip install -q sqlalchemy psycopg2-binary gunicorn </dev/null 2>/dev/null ||
        "$py" -m pip install -q --break-system-packages sqlalchemy psycopg2-binary gunicorn </dev/null
}
# One run of 200 queries against gunicorn --preload with 4 workers; $1: the
# run's name, $2: the config (empty: without forkguard), $3: what to show.
sqla_serve() {
    local label=$1 config=$2 shown=$3 port
    port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    local -a pre=()
    [ -n "$config" ] && pre=("$fg" run -c "$config" --)
    rm -f "$out/sqla-$label.log"
    FGT_PG_PORT=$sqla_port FORKGUARD_LOG="$PWD/$out/sqla-$label.log" setsid "${pre[@]}" "$py" -m gunicorn \
        --preload -w 4 --timeout 5 -b "127.0.0.1:$port" --chdir tests/py sqla_app:app \
        >"$out/sqla-$label.out" 2>&1 &
    sqla_gunicorn=$!
    printf '    %-24s' "$shown:"
    timeout 100 "$py" scripts/demo/sqla_client.py "$port" "$label" || say "(the run did not finish)"
    kill -KILL -- "-$sqla_gunicorn" 2>/dev/null || true
    wait "$sqla_gunicorn" 2>/dev/null || true
    sqla_gunicorn=""
}
sqla_scene() {
    local bin
    bold "10. SQLAlchemy in gunicorn --preload workers, no code change ([[python]])"
    if ! sqla_install; then
        say "skipped: sqlalchemy, psycopg2 and gunicorn could not be installed"
        return 0
    fi
    bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
    sqla_pg_ctl=$bin/pg_ctl
    sqla_pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/forkguard-demo-pg.XXXXXX")
    trap sqla_cleanup EXIT
    chmod 0755 "$sqla_pg_dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$sqla_pg_dir"; fi
    sqla_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if ! (cd "$sqla_pg_dir" && sqla_as_pg timeout 60 "$bin/initdb" -A trust -U postgres --no-sync -D "$sqla_pg_dir/data" >/dev/null &&
        sqla_as_pg timeout 60 "$sqla_pg_ctl" -D "$sqla_pg_dir/data" -l "$sqla_pg_dir/log" -w -t 30 \
            -o "-p $sqla_port -k $sqla_pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null); then
        say "skipped: PostgreSQL did not start ($(tail -1 "$sqla_pg_dir/log" 2>/dev/null))"
        sqla_cleanup
        return 0
    fi
    say "tests/py/sqla_app.py: a module-level SQLAlchemy engine (psycopg2) that the master uses once at"
    say "import; gunicorn --preload -w 4; 200 queries from 8 clients, each SELECTs its own token."
    sed "s/\"\\*:5432\"/\"*:$sqla_port\"/" config/gunicorn-sqlalchemy.toml >"$out/sqla.toml"
    sed '/^\[\[python\]\]/,$d' "$out/sqla.toml" >"$out/sqla-disconnect.toml"
    chmod 0644 "$out/sqla.toml" "$out/sqla-disconnect.toml"
    sqla_serve without "" "without forkguard"
    sqla_serve disconnect "$out/sqla-disconnect.toml" "[[fd]] disconnect"
    sqla_serve python "$out/sqla.toml" "+ [[python]] dispose"
    say "without forkguard the workers share the master's connection: wrong rows and protocol errors;"
    say "disconnect (peer = \"*:$sqla_port\") makes it dead in each worker: no wrong row, but SQLAlchemy"
    say "hands it out once, so each worker's first query fails; config/gunicorn-sqlalchemy.toml adds"
    say "a [[python]] child entry, engine.dispose(close=False), which $(grep -c 'python child of .*: 1 ok' "$out/sqla-python.log" || true) workers ran: no query failed."
    sqla_cleanup
    trap - EXIT
}
sqla_scene

bold "Done. See README.md for the config format, scripts/test.sh for the tests."
