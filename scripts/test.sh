#!/usr/bin/env bash
# Run forkguard's whole test suite: build, unit and integration tests
# (cargo), then the shell suites in tests/sh/.
#
# Works on a fresh Debian 12 machine as root: what the tests need and is
# missing (gcc, python3, shellcheck, util-linux's unshare/setpriv, and the
# real servers the fd and torture tests talk to: redis-server, PostgreSQL
# with psycopg2; strace, setcap, perl and node for the torture suite;
# libc6-dbg and binutils for forkguard why; libssl-dev and libsqlite3-dev
# for held_locks on real libraries)
# is installed first (apt-get; psycopg2 with pip). Needs no standard input.
#
# The library and CLI under test are the release build users get; the test
# programs are built with the light `fgtest` profile (Cargo.toml), which is
# much faster to build than release with LTO.
#
# Works from any checkout, also one in a directory other users cannot enter
# (a clone under /root or in a `mktemp -d` directory): the tests that run
# something as another user copy it under the temp dir first, and this run
# keeps the library, the CLI and the C fixtures in a private (0700) directory
# to prove that none relies on the checkout being reachable.
#
# Set FGT_TEST_PREFIX to run each test binary under a wrapper, e.g.
# FGT_TEST_PREFIX="strace -f -o /tmp/t" (passed to cargo as the runner).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '== %s\n' "$*" >&2; }

# What cannot work from here, in one line, before anything runs: the tests
# that switch to nobody or postgres give that user files under the temp dir,
# so every user must be able to enter it; the fixtures and test programs
# must be able to execute where they are built.
check_where() {
    local tmp=${TMPDIR:-/tmp} target=${CARGO_TARGET_DIR:-target} d probe
    if [[ ! -d $tmp ]]; then
        log "cannot run here: the temp dir $tmp (TMPDIR) does not exist"
        exit 1
    fi
    if [[ $(id -u) -eq 0 ]]; then
        d=$(realpath -e "$tmp")
        while :; do
            if [[ $(( 0$(stat -c %a "$d") & 1 )) -eq 0 ]]; then
                log "cannot run here: other users (nobody, postgres) cannot enter $d, on the way to the temp dir $tmp; unset TMPDIR or point it at a directory everyone can enter"
                exit 1
            fi
            [[ $d == / ]] && break
            d=$(dirname "$d")
        done
    fi
    mkdir -p "$target"
    for d in "$tmp" "$target"; do
        probe=$(mktemp -p "$d" .fgt-exec.XXXXXX)
        printf '#!/bin/sh\n' >"$probe"
        chmod 0755 "$probe"
        if ! "$probe" 2>/dev/null; then
            rm -f "$probe"
            log "cannot run here: programs cannot execute in $d (a noexec mount?); the tests build and run programs there"
            exit 1
        fi
        rm -f "$probe"
    done
}
check_where

install_missing() {
    local -a pkgs=()
    command -v gcc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
    command -v g++ >/dev/null 2>&1 || pkgs+=(g++) # tests/held_locks.rs: tests/c/held_cache.cpp
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    command -v shellcheck >/dev/null 2>&1 || pkgs+=(shellcheck)
    command -v unshare >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v setpriv >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v mount >/dev/null 2>&1 || pkgs+=(mount)
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-benchmark >/dev/null 2>&1 || pkgs+=(redis-tools)
    command -v setcap >/dev/null 2>&1 || pkgs+=(libcap2-bin)
    command -v strace >/dev/null 2>&1 || pkgs+=(strace)
    command -v perl >/dev/null 2>&1 || pkgs+=(perl)
    # libc_locks (tests/libc_locks.rs, with the packages below): gdb checks
    # the loader's lock offsets against its debug info.
    command -v gdb >/dev/null 2>&1 || pkgs+=(gdb)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    # glibc's debug symbols (forkguard why names glibc's internal locks;
    # libc_locks finds them there);
    # objcopy/readelf for the stripped-program and debug-file tests.
    dpkg-query -W -f='${Status}' libc6-dbg 2>/dev/null | grep -q 'ok installed' || pkgs+=(libc6-dbg)
    command -v objcopy >/dev/null 2>&1 || pkgs+=(binutils)
    # held_locks on real libraries (tests/held_libs.rs): OpenSSL 3, SQLite.
    dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q 'ok installed' || pkgs+=(libssl-dev)
    dpkg-query -W -f='${Status}' libsqlite3-dev 2>/dev/null | grep -q 'ok installed' || pkgs+=(libsqlite3-dev)
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || pkgs+=(postgresql)
    # pip itself, and the headers uWSGI's build needs, where python3 is
    # Debian's own (pyenv's and other builds bring both).
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        pkgs+=(python3-pip python3-dev)
    fi
    ((${#pkgs[@]})) || return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "missing: ${pkgs[*]} (install them, or run as root on Debian)"
        exit 1
    fi
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null
}

# pip install, also where python3 is Debian's own, which refuses to install
# into itself without --break-system-packages (PEP 668).
pip_install() {
    python3 -m pip install -q "$@" </dev/null 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$@" </dev/null
}

# The Python packages the real-server tests use (after apt-get, which may
# have just installed python3 and pip).
install_python_packages() {
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import psycopg2' 2>/dev/null; then
        log "installing psycopg2-binary (pip)"
        pip_install psycopg2-binary </dev/null || log "psycopg2 could not be installed: the PostgreSQL test will say it skipped"
    fi
    # [[python]] with real prefork servers (tests/python_servers.rs).
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import gunicorn' 2>/dev/null; then
        log "installing gunicorn (pip)"
        pip_install gunicorn </dev/null || log "gunicorn could not be installed: tests/python_servers.rs will say it skipped"
    fi
    # uWSGI is built from source by pip (needs gcc and the Python headers):
    # the python plugin alone (no SSL, PCRE, routing, XML: the tests use
    # none) at -O0 takes 2.6 times less CPU than the default build
    # (docs/python.md). --no-cache-dir keeps this build out of pip's wheel
    # cache, where a later `pip install uwsgi` would pick it up.
    if command -v python3 >/dev/null 2>&1 && ! python3 -m pip show -q uwsgi >/dev/null 2>&1; then
        log "installing uwsgi (pip, built from source: about a minute)"
        UWSGI_PROFILE=pyonly APPEND_CFLAGS=-O0 pip_install --no-cache-dir uwsgi </dev/null ||
            log "uwsgi could not be installed: tests/python_servers.rs will say it skipped"
    fi
    # tests/python_servers.rs: a SQLAlchemy engine (psycopg2) in gunicorn --preload workers.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import sqlalchemy' 2>/dev/null; then
        log "installing sqlalchemy (pip)"
        pip_install sqlalchemy </dev/null || log "sqlalchemy could not be installed: the SQLAlchemy test will say it skipped"
    fi
}

install_missing
install_python_packages
if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install a Rust toolchain (1.85 or newer)"
    exit 1
fi

log "cargo build --release --workspace"
cargo build --release --workspace

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
# The library, the CLI and the fixtures the tests compile, in a private
# directory (mktemp -d: 0700), as in a clone under /root: a test that hands
# one of them to another user without copying it first fails here too.
private=$(mktemp -d)
trap 'rm -rf "$private"' EXIT
cp "$target_dir/release/libforkguard.so" "$target_dir/release/forkguard" "$private/"
FORKGUARD_LIB=$private/libforkguard.so
FORKGUARD_BIN=$private/forkguard
FGT_FIXTURE_DIR=$private/fixtures
export FORKGUARD_LIB FORKGUARD_BIN FGT_FIXTURE_DIR
if [[ -n ${FGT_TEST_PREFIX:-} ]]; then
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$FGT_TEST_PREFIX"
fi

failed=()
log "cargo test --profile fgtest --workspace (against the release library)"
if ! cargo test --profile fgtest --workspace --no-fail-fast; then
    failed+=("cargo test")
fi

shopt -s nullglob
for suite in tests/sh/*.sh; do
    log "$suite"
    if ! bash "$suite" </dev/null; then
        failed+=("$suite")
    fi
done

log "shellcheck"
# -x: follow the files scripts source (scripts/bench/*.sh, named by
# `# shellcheck source=` lines).
scripts=(scripts/*.sh scripts/*/*.sh tests/sh/*.sh)
if ! shellcheck -x "${scripts[@]}"; then
    failed+=(shellcheck)
fi

if ((${#failed[@]})); then
    log "failed: ${failed[*]}"
    exit 1
fi
log "all tests passed"
