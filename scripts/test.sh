#!/usr/bin/env bash
# Run forkguard's whole test suite: build, unit and integration tests
# (cargo), then the shell suites in tests/sh/.
#
# Works on a fresh Debian 12 machine as root: what the tests need and is
# missing (gcc, python3, shellcheck, util-linux's unshare/setpriv, and the
# real servers the fd and torture tests talk to: redis-server, PostgreSQL
# with psycopg2; strace, setcap, perl and node for the torture suite)
# is installed first (apt-get; psycopg2 with pip). Needs no standard input.
#
# Set FGT_TEST_PREFIX to run each test binary under a wrapper, e.g.
# FGT_TEST_PREFIX="strace -f -o /tmp/t" (passed to cargo as the runner).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '== %s\n' "$*" >&2; }

install_missing() {
    local -a pkgs=()
    command -v gcc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
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
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || pkgs+=(postgresql)
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import psycopg2' 2>/dev/null; then
        log "installing psycopg2-binary (pip)"
        python3 -m pip install -q psycopg2-binary </dev/null || log "psycopg2 could not be installed: the PostgreSQL test will say it skipped"
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

install_missing
if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install a Rust toolchain (1.85 or newer)"
    exit 1
fi

log "cargo build --release --workspace"
cargo build --release --workspace

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
FORKGUARD_LIB="$target_dir/release/libforkguard.so"
export FORKGUARD_LIB
if [[ -n ${FGT_TEST_PREFIX:-} ]]; then
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$FGT_TEST_PREFIX"
fi

failed=()
log "cargo test -p forkguard --lib (unit tests beside the library's pure code)"
if ! cargo test -p forkguard --lib; then
    failed+=("forkguard unit tests")
fi
log "cargo test --release --workspace"
if ! cargo test --release --workspace --no-fail-fast; then
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
scripts=(scripts/*.sh tests/sh/*.sh)
if ! shellcheck "${scripts[@]}"; then
    failed+=(shellcheck)
fi

if ((${#failed[@]})); then
    log "failed: ${failed[*]}"
    exit 1
fi
log "all tests passed"
