#!/usr/bin/env bash
# Shell tests of the forkguard command (SPEC §6): run, check, audit, exit codes.
# Every command runs under `timeout`, so a hang fails instead of stalling.
# Usage: tests/sh/cli.sh   (FORKGUARD_BIN / FORKGUARD_LIB override the build)
# Set FGT_WRAP (e.g. "strace -f -o /tmp/t") to run each command under a tool.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FORKGUARD_BIN:-$root/target/release/forkguard}
export FORKGUARD_LIB=${FORKGUARD_LIB:-$root/target/release/libforkguard.so}
wrap=${FGT_WRAP:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [ -n "${2:-}" ] && printf '     %s\n' "$2"; }

# run_fg NAME EXPECTED_STATUS CMD...: status, stdout in $out, stderr in $err.
run_fg() {
  local name=$1 want=$2
  shift 2
  # shellcheck disable=SC2086
  timeout 30 $wrap "$@" >"$tmp/out" 2>"$tmp/err"
  status=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [ "$status" -eq "$want" ]; then pass "$name"; else fail "$name" "status $status, want $want; stderr: $err"; fi
}

expect() { # NAME HAYSTACK REGEX
  if printf '%s\n' "$2" | grep -Eq -- "$3"; then pass "$1"; else fail "$1" "no match for /$3/ in: $2"; fi
}

[ -x "$bin" ] || { echo "missing $bin: run cargo build --release --workspace"; exit 1; }
[ -f "$FORKGUARD_LIB" ] || { echo "missing $FORKGUARD_LIB"; exit 1; }

cat >"$tmp/calls.c" <<'C'
#include <sys/wait.h>
#include <unistd.h>
void fgt_prepare(void) { write(2, "[prepare]\n", 10); }
void fgt_child(void) { write(2, "[child]\n", 8); }
int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1) { /* fork once, like a prefork server */
    pid_t p = fork();
    if (p == 0) _exit(0);
    int st;
    if (p < 0 || waitpid(p, &st, 0) != p) return 1;
  }
  return 0;
}
C
cc -rdynamic -o "$tmp/calls" "$tmp/calls.c" || { echo "cc failed"; exit 1; }
cc -static -o "$tmp/static" "$tmp/calls.c" 2>/dev/null || cp "$tmp/calls" "$tmp/static-unavailable"

cat >"$tmp/good.toml" <<'T'
version = 1
[settings]
log = "stderr"
[[call]]
phase = "prepare"
symbol = "fgt_prepare"
[[call]]
phase = "child"
symbol = "fgt_child"
[child]
name = "fgt-worker"
T
cat >"$tmp/missing.toml" <<'T'
version = 1
[[call]]
phase = "child"
symbol = "fgt_no_such_function"
T
printf 'version = 1\n[settings]\nlog = "stderr"\nbogus = 1\n' >"$tmp/bad.toml"
printf 'version = 2\n' >"$tmp/v2.toml"
printf 'version = 1\n[settings]\nlog = "stderr"\n' >"$tmp/log.toml"
chmod 644 "$tmp"/*.toml

cat >"$tmp/optional.toml" <<'T'
version = 1
[settings]
log = "stderr"
[[call]]
phase = "child"
symbol = "fgt_child"
[[call]]
phase = "child"
symbol = "fgt_not_there"
optional = true
T
chmod 644 "$tmp/optional.toml"

# --- check -----------------------------------------------------------------
run_fg "help exits 0" 0 "$bin" --help
run_fg "check valid config" 0 "$bin" check "$tmp/good.toml"
expect "check prints the phases" "$out" '^prepare:'
expect "check lists the child call" "$out" 'call fgt_child'
expect "check lists [child] settings" "$out" 'name = "fgt-worker"'
run_fg "check unknown key" 1 "$bin" check "$tmp/bad.toml"
expect "check error is FILE:LINE:COL" "$err" "^forkguard: $tmp/bad.toml:4:1: "
run_fg "check bad version" 1 "$bin" check "$tmp/v2.toml"
expect "bad version located" "$err" "^forkguard: $tmp/v2.toml:1:11: unsupported version"
run_fg "check missing file" 1 "$bin" check "$tmp/nope.toml"
expect "missing file named" "$err" "^forkguard: $tmp/nope.toml: cannot open"
FORKGUARD_CONFIG="$tmp/good.toml" run_fg "check defaults to FORKGUARD_CONFIG" 0 "$bin" check
run_fg "check --program resolves symbols" 0 "$bin" check "$tmp/good.toml" --program "$tmp/calls"
expect "symbol found in the program" "$out" 'resolved call fgt_child in .*calls \(dynamic symbol\)'
run_fg "check --program reports a missing symbol" 1 "$bin" check "$tmp/missing.toml" --program "$tmp/calls"
expect "missing symbol named" "$out$err" 'fgt_no_such_function'
printf 'version = 1\n[[python]]\nphase = "child"\ncall = "m:f"\nprograms = ["calls"]\n' >"$tmp/py.toml"
chmod 644 "$tmp/py.toml"
run_fg "check --program with [[python]] entries" 0 "$bin" check "$tmp/py.toml" --program "$tmp/calls"
expect "python entry applies by programs" "$out" '^python: line 2, child: python call m:f\(\): applies$'
expect "a C program does not run CPython" "$out" "^python: $tmp/calls does not run CPython .*1 of 1 entry applies, but will not run"
py=$(command -v python3 >/dev/null && python3 -c 'import sys; print(sys.executable)')
if [ -n "$py" ]; then
  run_fg "check --program python3 with [[python]] entries" 0 "$bin" check "$tmp/py.toml" --program "$py"
  expect "python entry refused by programs" "$out" '^python: line 2, child: python call m:f\(\): does not apply \(programs = \[calls\]\)$'
  expect "the interpreter runs CPython" "$out" "^python: none of the 1 entry applies; $py runs CPython 3\.[0-9]+"
fi
printf '#!/usr/bin/env python3\nprint(1)\n' >"$tmp/envscript.py"
chmod 755 "$tmp/envscript.py"
run_fg "check --program of a #!/usr/bin/env script" 0 "$bin" check "$tmp/py.toml" --program "$tmp/envscript.py"
expect "the env script gets a note" "$out" '^python: note: .*envscript.py starts its interpreter through env: .*check python3 itself'
if [ -x "$tmp/static" ]; then
  run_fg "check --program refuses a static program" 1 "$bin" check "$tmp/good.toml" --program "$tmp/static"
  expect "static program explained" "$err" 'statically linked'
else
  fail "check --program refuses a static program" "cannot build a static test program (libc6-dev static libc missing)"
fi

# --- run -------------------------------------------------------------------
run_fg "run true" 0 "$bin" run -- true
run_fg "run keeps the exit status" 7 "$bin" run -- sh -c 'exit 7'
run_fg "run missing command is 127" 127 "$bin" run -- /no/such/cmd
expect "missing command named" "$err" "no/such/cmd"
run_fg "run non-executable is 126" 126 "$bin" run -- "$tmp/good.toml"
# shellcheck disable=SC2016 # $LD_PRELOAD is expanded by the inner shell
run_fg "run sets LD_PRELOAD (absolute, first)" 0 env LD_PRELOAD=libm.so.6 "$bin" run -- sh -c 'echo "$LD_PRELOAD"'
expect "library first, old entries kept" "$out" "^/.*libforkguard\.so libm\.so\.6$"
run_fg "run -c applies the config" 0 "$bin" run -c "$tmp/good.toml" -- "$tmp/calls" fork
expect "prepare call ran" "$err" '\[prepare\]'
expect "child call ran" "$err" '\[child\]'
expect "fork line logged" "$err" 'forkguard\[[0-9]+\] fork -> [0-9]+ via fork: prepare 1 ok'
expect "child line logged" "$err" 'forkguard\[[0-9]+\] child of [0-9]+: 2 ok'
run_fg "run with an optional missing call" 0 "$bin" run -c "$tmp/optional.toml" -- "$tmp/calls" fork
expect "the missing optional call is skipped silently" "$err" 'child of [0-9]+: 1 ok [0-9.]+us$'
run_fg "run --log FILE" 0 "$bin" run -c "$tmp/log.toml" --log "$tmp/fg.log" -- bash -c '(true)'
expect "log file has the fork" "$(cat "$tmp/fg.log" 2>/dev/null)" 'fork -> [0-9]+ via fork'
run_fg "run --format json" 0 "$bin" run -c "$tmp/log.toml" --format json -- bash -c '(true)'
if printf '%s\n' "$err" | python3 -c '
import json, sys
evs = [json.loads(l) for l in sys.stdin if l.strip()]
kinds = {e["event"] for e in evs}
assert {"config", "fork", "child"} <= kinds, kinds
for e in evs:
    if e["event"] == "fork":
        for k in ("ts", "pid", "via", "child", "phase_us", "actions_ok", "actions_failed", "errors"):
            assert k in e, k
' 2>"$tmp/py"; then pass "json lines parse, with the SPEC fields"; else fail "json lines parse" "$(cat "$tmp/py")"; fi
run_fg "run with a bad config warns and runs" 0 "$bin" run -c "$tmp/bad.toml" -- sh -c 'echo main-ran'
expect "warned once with location" "$err" "^forkguard: $tmp/bad.toml:4:1: unknown field"
expect "program ran" "$out" '^main-ran$'
printf 'version = 1\n[settings]\non_error = "abort"\nbogus = 1\n' >"$tmp/abort.toml"
chmod 644 "$tmp/abort.toml"
run_fg "on_error = abort exits 70 before main" 70 "$bin" run -c "$tmp/abort.toml" -- sh -c 'echo main-ran'
if [ -z "$out" ]; then pass "main did not run"; else fail "main did not run" "$out"; fi
# SPEC 2: FORKGUARD_DISABLE=1 turns every phase off, also under `run`
# (control: the same command without it logs the fork).
FORKGUARD_DISABLE=1 run_fg "run honours FORKGUARD_DISABLE" 0 "$bin" run -c "$tmp/log.toml" -- bash -c '(true)'
if printf '%s\n' "$err" | grep -q 'via fork'; then fail "no phase under FORKGUARD_DISABLE" "$err"; else pass "no phase under FORKGUARD_DISABLE"; fi
run_fg "run without FORKGUARD_DISABLE" 0 "$bin" run -c "$tmp/log.toml" -- bash -c '(true)'
expect "phases run without FORKGUARD_DISABLE" "$err" 'via fork'
FORKGUARD_DISABLE=1 run_fg "audit clears FORKGUARD_DISABLE" 0 "$bin" audit -- bash -c '(true)'
expect "audit reports despite FORKGUARD_DISABLE" "$err" 'audit fork via fork'

# --- audit -----------------------------------------------------------------
run_fg "audit runs the command" 0 "$bin" audit -- bash -c '(true); exit 0'
expect "audit reports the fork" "$err" 'audit fork via fork: 0 other threads alive; inherited fds:'
run_fg "audit keeps the exit status" 3 "$bin" audit -- bash -c '(true); exit 3'
run_fg "audit sees other threads and a listener" 0 "$bin" audit -- python3 -c '
import os, socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
e = threading.Event(); t = threading.Thread(target=e.wait); t.start()
pid = os.fork()
if pid == 0: os._exit(0)
os.waitpid(pid, 0); e.set(); t.join()'
expect "audit counts the thread" "$err" '1 other thread alive'
expect "audit counts the listener" "$err" '1 listen'
run_fg "audit of a missing command is 127" 127 "$bin" audit -- /no/such/cmd

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
