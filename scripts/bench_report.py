#!/usr/bin/env python3
"""Render forkguard's benchmark report from the raw measurements.

    scripts/bench_report.py RAW                   the Markdown report on stdout
    scripts/bench_report.py RAW --out DIR         DIR/BENCHMARKS.md and DIR/bench-overhead.svg
    scripts/bench_report.py RAW --plot-data DIR   also DIR/plot-calls.dat and DIR/plot-mem.dat
    scripts/bench_report.py --bash-rounds RAW     the summary of scripts/bash-rounds.sh

RAW is the file scripts/bench.sh writes (target/bench/raw.jsonl): one JSON
object a line, {"kind": ..., name: value, ...}, every value a string as the
measuring tool printed it. The statistics (scripts/bench_stats.py): medians, ranges, spreads
(median absolute deviation), medians of per-round ratios. Figures are
rounded exactly as the former awk statistics of scripts/bench.sh did
(intermediate values through printf "%.10g"), so a report renders the same
figures from the same measurements. Standard library only.
"""

import argparse
import collections
import os
import sys

import bench_features
import bench_plot
from bench_stats import (Raw, bash_rounds_rows, bash_rounds_summary, by_round, fmt_delta, fmt_f, fmt_int, fmt_pct,
                         fmt_spread, g10, order, paired_ratio, ratio_pct, s10, stats)


def cg_per_fork(r):
    return g10((float(r["t2"]) - float(r["t1"])) / (float(r["n2"]) - float(r["n1"])))


def floor_of(v):
    if v.startswith("fg_calls"):
        return "atfork" + v[len("fg_calls"):]
    if v.startswith("fg_locks"):
        return "atlocks" + v[len("fg_locks"):]
    if v.startswith("fg_"):
        return "minimal"
    return ""


def uniq_counts(vals):
    """`sort -n | uniq -c` as "3× 2, 1× 1"."""
    c = collections.Counter(vals)
    keys = sorted(c, key=float)
    return ", ".join(f"{c[k]}× {k}" for k in keys)


# --------------------------------------------------------------- report --


class Report:
    def __init__(self, raw):
        self.raw = raw
        self.lines = []
        self.cgstart = {}  # (prog, v) -> first count
        self.wstart_med = {}
        self.rss_med = {}
        self.dirty = {}
        self.cgfork = {}  # (mib, v) -> per fork
        self.wfork = {}  # (mib, v) -> (med, lo, hi)
        self.wfork_flt = {}
        self.cphase_med = {}
        self.srv_ratio = {}
        self.srv_med = {}
        for r in raw.of("cg_fork"):
            self.cgfork[(r["mib"], r["v"])] = cg_per_fork(r)

    def md(self, *parts):
        self.lines.append(" ".join(parts))

    def text(self, block):
        for line in block.strip("\n").split("\n"):
            self.md(line)

    # ---------------------------------------------------- start-up
    def startup_callgrind(self):
        recs = self.raw.of("cg_start")
        if not recs:
            return
        md, raw = self.md, self.raw
        self.text("""
## Start-up: user-space instructions (callgrind)

Command: `valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null /usr/bin/env ENV PROGRAM`,
the count of PROGRAM alone. Two runs each; "repeat" shows whether they agreed.
The floor is the minimal C interposer: the least any preloaded fork wrapper costs.
The "unused variable" row is a control: a variable as long as `FORKGUARD_CONFIG=…/empty.toml`
costs that much with no preload at all (ld.so scans the environment; bash imports every variable),
so it is part of the "empty config" rows. Differences of a few hundred instructions also come from
the lengths of the paths in the environment.
""")
        md()
        md("| program | preload | environment | instructions | repeat | over no preload | over the floor | overhead ÷ floor's |")
        md("|---|---|---|--:|---|--:|--:|--:|")
        for p in order(recs, "prog"):
            rows = [r for r in recs if r["prog"] == p]
            for r in rows:
                self.cgstart[(p, r["v"])] = int(r["a"])
            base, floor = self.cgstart[(p, "plain")], self.cgstart[(p, "minimal")]
            fo = floor - base
            for r in rows:
                v, n = r["v"], int(r["a"])
                rep = "same" if r["a"] == r["b"] else f"differs: {fmt_int(r['b'])}"
                ratio = over = overf = "—"
                if v != "plain":
                    over = f"{fmt_delta(n - base)} ({fmt_pct(n - base, base)})"
                if v.startswith("fg_"):
                    overf = fmt_delta(n - floor)
                    if fo > 0:
                        ratio = fmt_f(g10((n - base) / fo), 1) + "×"
                md(f"| `{p}` | {raw.label(v)} | `{raw.env(v)}` | {fmt_int(n)} | {rep} | {over} | {overf} | {ratio} |")
        md()

    def startup_wall(self):
        recs = self.raw.of("w_start")
        if not recs:
            return
        md, raw = self.md, self.raw
        md("## Start-up: wall clock")
        md()
        md(f"Command: `bench/spawnloop -e ENV... {raw.cfg('start_spawns')} PROGRAM` (posix_spawn + wait4, one after the other),")
        md(f"the mean per spawn of each run; {raw.cfg('start_rounds')} rounds, the variants alternating (rotated order) within each round.")
        self.text("""
Median, range and spread (median absolute deviation ÷ median) over the rounds; the ratios are medians
of per-round ratios, each against the run made in the same round.
""")
        md()
        md("| program | preload | environment | median µs/spawn | range µs | spread | vs no preload | vs minimal interposer |")
        md("|---|---|---|--:|--:|--:|--:|--:|")
        for p in order(recs, "prog"):
            rows = [r for r in recs if r["prog"] == p]
            plain, minimal = by_round(rows, "plain"), by_round(rows, "minimal")
            for v in order(rows):
                s = by_round(rows, v)
                med, lo, hi, mad = stats(s)
                self.wstart_med[(p, v)] = med
                rn = rf = "—"
                if v != "plain":
                    rn = ratio_pct(s, plain)
                if v not in ("plain", "minimal"):
                    rf = ratio_pct(s, minimal)
                md(f"| `{p}` | {raw.label(v)} | `{raw.env(v)}` | {fmt_f(med, 1)} | {fmt_f(lo, 1)}–{fmt_f(hi, 1)} | {fmt_spread(med, mad)} | {rn} | {rf} |")
        md()

    # ---------------------------------------------------- memory
    def memory(self):
        recs = self.raw.of("rss")
        if not recs:
            return
        md, raw = self.md, self.raw
        runs = raw.cfg("peakrss_runs")
        md("## Memory")
        md()
        md(f"Peak RSS: `bench/peakrss -e ENV... {runs} PROGRAM` (fork + execve + `wait4`, `ru_maxrss`), median and range")
        self.text("""
over the runs. The harness is static and small because the kernel counts the image a process had
before its execve into ru_maxrss (`/usr/bin/time` or a dynamic harness would put its own ~1 MiB into
every figure). File-backed pages come in by fault-around, so the address-space layout (ASLR)
moves these figures by ±100 KiB from run to run: read them to ~100 KiB; Private_Dirty below is the
per-process cost.
""")
        md()
        md("| program | preload | environment | peak RSS KiB (median) | range KiB | over no preload |")
        md("|---|---|---|--:|--:|--:|")
        for r in recs:
            p, v = r["prog"], r["v"]
            self.rss_med[(p, v)] = r["median"]
            over = "—"
            if v != "plain":
                over = f"{fmt_delta(g10(float(r['median']) - float(self.rss_med[(p, 'plain')])))} KiB"
            md(f"| `{p}` | {raw.label(v)} | `{raw.env(v)}` | {fmt_int(r['median'])} | {fmt_int(r['min'])}–{fmt_int(r['max'])} | {over} |")
        md()
        md(f"(The harness's own peak, the floor under these figures: {fmt_int(recs[-1]['hwm'])} KiB.)")
        md()
        self.text("""
A running `sleep 10`, read after 0.5 s (`/proc/PID/status`, `smaps_rollup`, `maps`): RssFile is
file-backed pages (program and library text, shared through the page cache with every other process
using them); Private_Dirty is what each process pays on its own (relocated data, heap, stack).
""")
        md()
        md("| preload | Rss KiB | RssFile KiB | RssAnon KiB | Private_Dirty KiB | Private_Dirty over no preload | objects mapped beyond no preload |")
        md("|---|--:|--:|--:|--:|--:|---|")
        base_dirty = 0
        for r in raw.of("sleep_mem"):
            v = r["v"]
            self.dirty[v] = int(r["dirty"])
            over = "—"
            if v == "plain":
                base_dirty = int(r["dirty"])
            else:
                over = f"{fmt_delta(int(r['dirty']) - base_dirty)} KiB"
            md(f"| {raw.label(v)} | {fmt_int(r['rss'])} | {fmt_int(r['rfile'])} | {fmt_int(r['ranon'])} | {fmt_int(r['dirty'])} | {over} | {r['extra']} |")
        md()
        lib = raw.one("lib")
        md(f"libforkguard.so: {fmt_int(lib['size'])} bytes on disk; DT_NEEDED: {lib['needed']}.")
        md()

    # ---------------------------------------------------- per fork
    def cg_over(self, v, per):
        fl = floor_of(v)
        if not fl:
            return "—"
        return f"{fmt_delta(g10(per - self.cgfork[('0', fl)]))} (vs {self.raw.label(fl)})"

    def perfork_callgrind(self):
        recs = self.raw.of("cg_fork", table="calls")
        if not recs:
            return
        md, raw = self.md, self.raw
        n1, n2 = raw.cfg("cg_n1"), raw.cfg("cg_n2")
        md("## Per fork: parent-side instructions (callgrind)")
        md()
        md(f"Command: `valgrind --tool=callgrind ... /usr/bin/env ENV forkloop N` for N = {n1} and {n2};")
        md(f"per fork = (total({n2}) − total({n1})) / {int(n2) - int(n1)}: the parent's own instructions for one")
        self.text("""
fork + waitpid, start-up and exit cancelled out. The children are counted separately by valgrind
and left out. Callgrind counts repeat exactly, so one run each.
Call actions cycle through phases prepare, parent, child and call `fgb_call1..4` (a volatile increment);
"calls seen" is what forkloop counted per fork, parent side / first child (prepare + child),
checked against the config. The floor of a forkguard row is `bench/atfork_floor.c` doing the same calls
through `pthread_atfork` (or the minimal interposer when there are no calls).
""")
        md()
        md(f"| preload | environment | calls seen | total N={n1} | total N={n2} | per fork | over no preload | over the floor |")
        md("|---|---|---|--:|--:|--:|--:|--:|")
        base = self.cgfork[("0", "plain")]
        for r in recs:
            v = r["v"]
            per = self.cgfork[("0", v)]
            over = fmt_delta(g10(per - base)) if v != "plain" else "—"
            md(f"| {raw.label(v)} | `{raw.env(v)}` | {r['chk']} | {fmt_int(r['t1'])} | {fmt_int(r['t2'])} | {fmt_f(per, 1)} | {over} | {self.cg_over(v, per)} |")
        md()
        mem = raw.of("cg_fork", table="mem")
        if not mem:
            return
        self.text("""
With memory allocated and touched before the loop (`forkloop N MiB`); user-space instructions
do not see the page-table copy, which is kernel time (see the wall clock below).
""")
        md()
        md("| allocated | preload | calls seen | N | per fork | over no preload |")
        md("|--:|---|---|---|--:|--:|")
        for r in mem:
            mib, v = r["mib"], r["v"]
            per = self.cgfork[(mib, v)]
            over = fmt_delta(g10(per - self.cgfork[(mib, "plain")])) if v != "plain" else "—"
            md(f"| +{mib} MiB | {raw.label(v)} | {r['chk']} | {r['n1']} and {r['n2']} | {fmt_f(per, 1)} | {over} |")
        md()

    def perfork_wall(self):
        recs = self.raw.of("w_fork")
        if not recs:
            return
        md, raw = self.md, self.raw
        md("## Per fork: wall clock")
        md()
        md("Command: `ENV forkloop N MiB`; forkloop times its own loop (fork, child `_exit`, `waitpid`), start-up and")
        md(f"allocation excluded, and prints the mean per fork. {raw.cfg('fork_rounds')} rounds, variants alternating (rotated order);")
        self.text("""
median, range and spread (median absolute deviation ÷ median) over the rounds; "vs no preload" is
the median of per-round ratios. Differences below the spread are noise: compare the callgrind
section for small effects. Page faults (first round, `getrusage` minor faults of the parent and of
each child, per fork) explain much of the kernel-side cost: after a fork, the first write to each
page in either process is a copy-on-write fault, a few µs each on this VM.
""")
        md()
        md("| allocated | preload | command | calls seen | page faults per fork (parent / child) | median µs/fork | range µs | spread | vs no preload | Δ µs |")
        md("|--:|---|---|---|--:|--:|--:|--:|--:|--:|")
        for mib in order(recs, "mib"):
            rows = [r for r in recs if r["mib"] == mib]
            plain = by_round(rows, "plain")
            for v in order(rows):
                first = next(r for r in rows if r["v"] == v and r["round"] == "0")
                s = by_round(rows, v)
                med, lo, hi, mad = stats(s)
                self.wfork[(mib, v)] = (med, lo, hi)
                flt = f"{fmt_f(first['flt_parent'], 1)} / {fmt_f(first['flt_child'], 1)}"
                self.wfork_flt[(mib, v)] = flt
                rn = dn = "—"
                if v != "plain":
                    rn = ratio_pct(s, plain)
                    dn = fmt_f(g10(med - self.wfork[(mib, "plain")][0]), 2)
                    if not dn.startswith("-"):
                        dn = "+" + dn
                md(f"| +{mib} MiB | {raw.label(v)} | `{raw.env(v)} forkloop {first['n']} {mib}` | {first['chk']} | {flt} | {fmt_f(med, 2)} | {fmt_f(lo, 2)}–{fmt_f(hi, 2)} | {fmt_spread(med, mad)} | {rn} | {dn} |")
        md()

    def lock_actions(self):
        recs = self.raw.of("cg_fork", table="locks")
        if not recs:
            return
        md, raw = self.md, self.raw
        md("## Per fork: lock, fd and child actions (callgrind)")
        md()
        self.text("""
Same command and method as above (`forkloop` 100 and 200 forks under callgrind, parent side).
Lock actions take `fgb_lock1..K` (normal mutexes exported by `forkloop`, uncontended) with
`type = "mutex"`, `strategy = "acquire"`: locked in prepare, unlocked in the parent, re-initialised
in the child. Their floor, `bench/atfork_floor.c` with `FGB_ATFORK_LOCKS=K`, does the same with
`pthread_atfork` handlers: `pthread_mutex_lock`, `pthread_mutex_unlock`, `pthread_mutex_init` keeping
the mutex's kind, without forkguard's timeout, owner check and bookkeeping. The 4 fd actions
(`kind = "listen"` → cloexec, `peer = "127.0.0.1:6379"` → disconnect, `kind = "epoll"` → renew,
`path` → reopen) and the `[child]` block (parent_death_signal, reset_signal_mask, reset_signal_handlers,
name) work in the child only: their parent-side cost is the bookkeeping; their child-side cost is in
the next section. "actions (forkguard log)" is what forkguard's JSON log reported for the first
fork of a separate run (`FORKGUARD_LOG=FILE FORKGUARD_LOG_FORMAT=json forkloop 2`): the proof
that the config was applied.
""")
        md()
        md("| preload | environment | actions (forkguard log) | per fork | over no preload | over the floor |")
        md("|---|---|---|--:|--:|--:|")
        base = self.cgfork[("0", "plain")]
        for r in recs:
            v = r["v"]
            per = self.cgfork[("0", v)]
            acts = raw.one("acts", v=v).get("text", "—")
            md(f"| {raw.label(v)} | `{raw.env(v)}` | {acts} | {fmt_f(per, 1)} | {fmt_delta(g10(per - base))} | {self.cg_over(v, per)} |")
        md()

    # ---------------------------------------------------- in the child
    def fd_actions(self):
        recs = self.raw.of("child")
        if not recs:
            return
        md, raw = self.md, self.raw
        md("## In the child: fd actions and child settings")
        md()
        self.text("""
Command: `ENV FGB_OPEN_FDS=K FGB_OPEN_KIND=file|udp forkloop N`: forkloop opens K more descriptors
(`/dev/null`, or unconnected UDP sockets) before its fork loop. "child phase" is forkguard's own
measure of its child phase, `phase_us` of the `child` events of its JSON log
(`FORKGUARD_LOG=FILE FORKGUARD_LOG_FORMAT=json`, a separate run of each round), median and range over
every child. The wall clock per fork (runs without the log) includes it, since forkloop waits for
each child to exit; a child that exits with descriptors open also pays for closing them in the
""")
        md(f"kernel at exit. {raw.cfg('child_rounds')} rounds, variants alternating. The hard descriptor limit on this VM is")
        self.text("""
20,000 (`setrlimit` cannot raise it, even as root), so the largest case is 15,000 descriptors,
not 100,000.

`from = 3` with nothing else is done with `close_range(2)` (one system call per gap in
`except`); adding `kind = "file"` makes forkguard list `/proc/self/fd` and look at each
descriptor (`fstat`), then close the files one by one: the per-descriptor path every other
selector takes. The kind and peer selectors run over 1,000 UDP sockets that they do not select
(`kind = "listen"` asks each socket `SO_ACCEPTCONN`; `peer` asks for its peer address).
""")
        md()
        md("| descriptors open | config | actions ok (first child) | children logged | child phase µs, median (range) | wall µs per fork, median (range) | wall vs no preload |")
        md("|--:|---|--:|--:|--:|--:|--:|")
        for tag in order(recs, "tag"):
            rows = [r for r in recs if r["tag"] == tag]
            plain = by_round(rows, "plain")
            for v in order(rows):
                vr = sorted((r for r in rows if r["v"] == v), key=lambda r: int(r["round"]))
                med, lo, hi, _ = stats(by_round(rows, v))
                ph = cnt = rn = "—"
                cfg = "no preload"
                if v != "plain":
                    p = [x for r in vr for x in r.get("phases", "").split()]
                    pm, plo, phi, _ = stats(p)
                    self.cphase_med[(tag, v)] = pm
                    ph = f"{fmt_f(pm, 1)} ({fmt_f(plo, 1)}–{fmt_f(phi, 1)})"
                    cnt = str(len(p))
                    rn = ratio_pct(by_round(rows, v), plain)
                    cfg = f"{raw.label(v)} (`{raw.env(v).rsplit('FORKGUARD_CONFIG=', 1)[-1]}`)"
                ok = vr[0].get("ok") or "—"
                md(f"| {fmt_int(vr[0]['fds'])} {vr[0]['fdkind']} | {cfg} | {ok} | {cnt} | {ph} | {fmt_f(med, 1)} ({fmt_f(lo, 1)}–{fmt_f(hi, 1)}) | {rn} |")
        md()

    # ---------------------------------------------------- servers
    def server_rows(self, key, what, command, plain, fg):
        ra, lo, hi = paired_ratio(fg, plain)
        self.srv_ratio[key] = ra
        for side, s in (("plain", plain), ("fg", fg)):
            med, mn, mx, mad = stats(s)
            self.srv_med[(key, side)] = med
            label, rc = "no preload", "—"
            if side == "fg":
                label, rc = "forkguard", f"{fmt_f(ra, 3)} ({fmt_f(lo, 3)}–{fmt_f(hi, 3)})"
            self.md(f"| {what} | {label} | `{command}` | {len(s)} | {fmt_f(med, 1)} | {fmt_f(mn, 1)}–{fmt_f(mx, 1)} | {fmt_spread(med, mad)} | {rc} |")

    def servers(self):
        bash = self.raw.of("bash_round")
        if not bash:
            return
        md, raw = self.md, self.raw
        iters = int(bash[0]["iters"])
        ms = {v: [s10(int(x) / 1e6) for x in by_round(bash, v, "ns")] for v in order(bash)}
        self.text("""
## Real servers

Each server runs twice at once, started the same way, one with `LD_PRELOAD=libforkguard.so
FORKGUARD_CONFIG=server-PROGRAM.toml` in its environment; the rounds alternate between them
(rotated order), and the ratio is the median of per-round ratios. The config applies to the
server's program only (`[settings] programs`) and has two actions any server could use: glibc's
`stdout` lock taken around the fork (`type = "stdio"`, `acquire`) and `kind = "listen"` →
`cloexec` in the child (a scan of `/proc/self/fd`). Wall clock on this shared VM: see the load
average above; a round that another job slowed shows in the range.
""")
        md()
        md("| benchmark | preload | command | rounds | median | range | spread | forkguard ÷ no preload (range) |")
        md("|---|---|---|--:|--:|--:|--:|--:|")
        self.server_rows("bash", "bash loop, ms per run (lower is better)",
                         f"bash -c 'for ((i = 0; i < {iters}; i++)); do ( : ); x=$(:); done'",
                         ms["plain"], ms["srv_bash_fg"])
        pg = raw.of("pg_round")
        if pg:
            self.server_rows("pg", "PostgreSQL, TPS (higher is better)",
                             f"pgbench -C -S -n -T {raw.cfg('pg_seconds')} -c 2 -j 2",
                             by_round(pg, "plain", "tps"), by_round(pg, "fg", "tps"))
        redis = raw.of("redis_round")
        if redis:
            self.server_rows("redis", "Redis `latest_fork_usec` of BGSAVE, µs (lower is better)",
                             "redis-cli BGSAVE; redis-cli INFO stats",
                             by_round(redis, "plain", "usec"), by_round(redis, "fg", "usec"))
        md()
        dfork = g10((self.srv_med[("bash", "fg")] - self.srv_med[("bash", "plain")]) * 1000 / (2 * iters))
        own = raw.one("bash_own")
        own_fork, own_child = stats(own["fork"].split())[0], stats(own["child"].split())[0]
        md(f"- bash: `{raw.env('srv_bash_fg')}`; {iters} subshells and {iters} command substitutions ({2 * iters} forks) per run; forkguard's log for `bash -c '( : )'`: {raw.one('bash_acts')['text']}.")
        md(f"  The medians differ by {fmt_f(dfork, 1)} µs per fork. forkguard's own phases take {fmt_f(own_fork, 1)} µs (prepare + parent) and")
        md(f"  {fmt_f(own_child, 1)} µs (child) per fork (medians of its JSON log over 200 subshells, a separate run); the")
        self.text("""
  rest is the kernel's: copy-on-write page faults for the pages forkguard writes after the fork, in
  both processes (see the page-fault columns of the per-fork wall-clock table), a few µs each here.
""")
        if pg:
            v = raw.one("pg_verify")
            failed = v["child_failed"].split()
            most = max(failed, key=float) if failed else "none"
            acts = (f"{v['fork_events']} fork and {v['child_events']} child events for 20 connections; "
                    f"child actions ok: {uniq_counts(v['child_ok'].split())}, most failed: {most}")
            md(f"- PostgreSQL ({raw.one('pg_meta')['version']}): the postmaster forks a backend for each connection and `-C` makes")
            self.text("""
  a new connection per transaction; `-S` (select-only) keeps the transaction itself short, so forking
  weighs as much as it can. Server: `-c fsync=off -c synchronous_commit=off`, on 127.0.0.1, as the
  postgres account, pgbench scale 1. A short verification run with forkguard's JSON log
""")
            md(f"  (`pgbench -C -S -t 20 -c 1`, then the server restarted without the log): {acts}.")
        if redis:
            m = raw.one("redis_meta")
            rounds = raw.cfg("server_rounds")
            rss = {r["v"]: r["rss_mib"] for r in redis if "rss_mib" in r}
            own = stats(m["fork_phases"].split())[0]
            acts = (f"{m['fork_events']} fork and {m['child_events']} child events for {rounds} BGSAVEs; "
                    f"child actions ok: {uniq_counts(m['child_ok'].split())}")
            md(f"- Redis {m['version']}: `DEBUG POPULATE {raw.cfg('redis_keys')} key 1000` in each server")
            md(f"  (used_memory_rss {rss.get('plain', '')} MiB without, {rss.get('fg', '')} MiB with forkguard), `--save \"\" --appendonly no`;")
            self.text("""
  `latest_fork_usec` is Redis's own timing of its `fork()` call, so it includes forkguard's prepare and
  parent phases. Each round starts a fresh server for each side (fill, one BGSAVE, stop): two long-lived
  servers differ in their own memory layout by more than forkguard costs. The forkguard servers ran with
""")
            md(f"  forkguard's JSON log on (one line per fork) to prove the config was applied: {acts};")
            md(f"  its prepare + parent phases took {fmt_f(own, 1)} µs per fork (median), {fmt_f(g10(100 * own / self.srv_med[('redis', 'plain')]), 2)}% of the")
            md("  median `latest_fork_usec` without it.")
        md()
        self.bash_tight(bash, ms)

    def bash_tight(self, bash, ms):
        md, raw = self.md, self.raw
        iters = int(bash[0]["iters"])
        md("### The bash loop, variant by variant")
        md()
        md(f"The bash row above, with the two preloads that bound it: {len(ms['plain'])} rounds of `bash -c` running {iters}")
        md("subshells and command substitutions each, the four variants in rotated order within each round")
        md("(`scripts/bash-rounds.sh`'s method: short rounds, so that a slow patch of the machine hits every")
        md("variant alike). Ratio: median of per-round ratios against no preload, with the quartiles of those")
        md("ratios; Δ µs per fork: difference of the medians over the 2 × iterations forks of a run.")
        md()
        md("| preload | environment | median ms per run | ratio to no preload | quartiles | Δ µs per fork |")
        md("|---|---|--:|--:|--:|--:|")
        for line in bash_rounds_rows(bash):
            v, med, ratio, q1, q3, dus = line
            cells = ("—", "—", "—") if v == "plain" else (f"{ratio:.3f}", f"{q1:.3f}–{q3:.3f}", f"{dus:+.1f}")
            md(f"| {raw.label(v)} | `{raw.env(v)}` | {med / 1000:.1f} | {cells[0]} | {cells[1]} | {cells[2]} |")
        md()

    # ---------------------------------------------------- features
    def features(self):
        bench_features.render(self)

    # ---------------------------------------------------- summary, page
    def summary(self):
        md, raw = self.md, self.raw
        p = "/bin/true"
        cs, cf = self.cgstart, self.cgfork
        if (p, "plain") in cs:
            base = cs[(p, "plain")]
            md(f"- Start-up of `/bin/true`: {fmt_int(base)} instructions alone;",
               f"the minimal C interposer adds {fmt_delta(g10(cs[(p, 'minimal')] - base))},",
               f"forkguard without a config {fmt_delta(g10(cs[(p, 'fg_noconf')] - base))},",
               f"with an empty config {fmt_delta(g10(cs[(p, 'fg_empty')] - base))},",
               "with a config that applies to it (a stdio lock, a listen fd action)",
               f"{fmt_delta(g10(cs[(p, 'fg_active')] - base))};",
               f"over the floor (the minimal interposer): {fmt_delta(g10(cs[(p, 'fg_noconf')] - cs[(p, 'minimal')]))},",
               f"{fmt_delta(g10(cs[(p, 'fg_empty')] - cs[(p, 'minimal')]))} (target: +30,000 each).")
            if (p, "fg_real") in cs:
                md("- Start-up of `/bin/true` with config/forkguard.toml, which does not apply to it:",
                   f"{fmt_delta(g10(cs[(p, 'fg_real_nc')] - base))} instructions parsing it,",
                   f"{fmt_delta(g10(cs[(p, 'fg_real')] - base))} with the plan cache (see the notes).")
        if (p, "plain") in self.wstart_med:
            md(f"- Wall clock per spawn of `/bin/true`: {fmt_f(self.wstart_med[(p, 'plain')], 0)} µs alone,",
               f"{fmt_f(self.wstart_med[(p, 'fg_empty')], 0)} µs with forkguard and an empty config (medians).")
        if ("0", "fg_calls4") in cf:
            b = cf[("0", "plain")]
            md(f"- Per fork, parent side: {fmt_f(b, 0)} instructions without a preload;",
               f"forkguard adds {fmt_f(g10(cf[('0', 'fg_empty')] - b), 0)} with an empty config",
               f"and {fmt_f(g10(cf[('0', 'fg_calls4')] - b), 0)} with 4 call actions,",
               f"where hand-written pthread_atfork handlers add {fmt_f(g10(cf[('0', 'atfork4')] - b), 0)}.")
        if ("0", "plain") in self.wfork:
            w, flt = self.wfork, self.wfork_flt
            big = raw.cfg_list("mem_sizes")[-1]
            md(f"- Wall clock per fork (fork + `_exit` + `waitpid`): {fmt_f(w[('0', 'plain')][0], 0)} µs alone,",
               f"{fmt_f(w[('0', 'fg_calls4')][0], 0)} µs with forkguard and 4 calls",
               f"(page faults per fork, parent / child: {flt.get(('0', 'plain'), '?')} alone, {flt.get(('0', 'fg_calls4'), '?')} with 4 calls);",
               f"with {big} MiB allocated {fmt_int(w[(big, 'plain')][0])} µs",
               f"and {fmt_int(w[(big, 'fg_calls4')][0])} µs (noisy: see the spread).")
        if (p, "plain") in self.rss_med:
            md(f"- Memory: peak RSS of `/bin/true` {fmt_int(self.rss_med[(p, 'plain')])} KiB alone,",
               f"{fmt_int(self.rss_med[(p, 'fg_empty')])} KiB with forkguard and an empty config (medians);",
               "private dirty memory of a running `sleep`",
               f"{fmt_delta(g10(self.dirty['fg_empty'] - self.dirty['plain']))} KiB with forkguard and an empty config.")
        if ("0", "fg_locks4") in cf:
            b = cf[("0", "plain")]
            md("- Lock actions, per fork, parent side: 4 mutexes in `acquire` add",
               f"{fmt_f(g10(cf[('0', 'fg_locks4')] - b), 0)} instructions",
               "where hand-written pthread_atfork handlers doing the same lock work add",
               f"{fmt_f(g10(cf[('0', 'atlocks4')] - b), 0)}; 16 mutexes:",
               f"{fmt_f(g10(cf[('0', 'fg_locks16')] - b), 0)} against",
               f"{fmt_f(g10(cf[('0', 'atlocks16')] - b), 0)}.")
        big = raw.cfg_list("fd_counts")[-1] if raw.cfg("fd_counts") else ""
        if (f"close{big}", "fd_range") in self.cphase_med:
            md(f"- Child phase, `from = 3` → close over {fmt_int(big)} descriptors:",
               f"{fmt_f(self.cphase_med[(f'close{big}', 'fd_range')], 1)} µs with `close_range`,",
               f"{fmt_f(self.cphase_med[(f'close{big}', 'fd_loop')], 1)} µs one descriptor at a time (`kind = \"file\"`) (medians).")
        if "bash" in self.srv_ratio:
            line = f"- Real servers, forkguard ÷ no preload (median of alternating rounds): bash loop time {fmt_f(self.srv_ratio['bash'], 3)} (target ≤ 1.03)"
            if "pg" in self.srv_ratio:
                line += f", PostgreSQL `pgbench -C` TPS {fmt_f(self.srv_ratio['pg'], 3)} (target ≥ 0.97)"
            if "redis" in self.srv_ratio:
                line += f", Redis BGSAVE `latest_fork_usec` {fmt_f(self.srv_ratio['redis'], 3)} (target ≤ 1.02)"
            md(line + ".")

    def machine_note(self):
        md, m, raw = self.md, self.raw.machine, self.raw
        rt = int(m["runtime_s"])
        md(f"- date: {m['date']}; mode: {raw.cfg('mode')}; script runtime: {rt // 60} min {rt % 60} s")
        md(f"- machine: {m['cpu'] or 'unknown CPU'}, {m['nproc']} CPUs, {'%.1f GiB' % (float(m['mem_kb']) / 1048576)}; {m['kernel']}")
        md(f"- {m['libc']}; {m['valgrind']}; {m['gcc']}; {m['rustc']}")
        md(f"- forkguard: a copy of `{m['lib_src']}` taken at the start (sha256 {m['lib_sha']}), built from the work tree at {m['rev']}")
        md(f"- load average (1, 5, 15 min) at the start: {m['load_start']}; at the end: {m['load_end']}")
        self.text("""
  (anything else running on the 2 CPUs, a build or a test suite, shows in the wall-clock figures)
- a noisy shared VM: wall-clock figures drift by ±20% between runs (and more between days);
  callgrind instruction counts repeat exactly and are the figures to compare across runs.
  There is no hardware instruction counter here (`perf stat` cannot count instructions).
""")
        if m.get("etc_config") == "yes":
            md("- **/etc/forkguard/forkguard.toml exists**: the \"no config\" rows read it.")

    def render(self):
        md, raw = self.md, self.raw
        # The sections first (they fill the figures the summary quotes).
        for section in (self.startup_callgrind, self.startup_wall, self.memory, self.perfork_callgrind,
                        self.perfork_wall, self.lock_actions, self.fd_actions, self.servers, self.features):
            section()
        body, self.lines = self.lines, []
        md("# forkguard benchmarks")
        md()
        how = "scripts/bench.sh" + (" --quick" if raw.cfg("mode") == "--quick" else "")
        md(f"Generated by `{how}`; do not edit by hand. Harnesses and floors, in C:")
        md("`bench/forkloop.c`, `bench/spawnloop.c`, `bench/peakrss.c`, `bench/minimal_interposer.c`,")
        md("`bench/atfork_floor.c` (call and lock floors).")
        md()
        self.machine_note()
        md()
        md("## Summary")
        md()
        self.summary()
        md()
        md("![per-fork overhead](bench-overhead.svg)")
        md()
        notes = raw.of("note")
        if notes:
            md("## Notes from this run")
            md()
            for n in notes:
                md(f"- {n['text']}")
            md()
        self.lines += body
        pending = raw.of("pending")
        if pending:
            md("## Not measured yet")
            md()
            for x in pending:
                md(f"- **{x['title']}**: {x['text']}")
            md()
        self.text("""
## Reproducing

```sh
scripts/bench.sh            # full run, about 8 minutes on 2 idle CPUs, plus a few for the feature rows (as root: servers, apt-get)
scripts/bench.sh --quick    # shorter loops and fewer rounds
scripts/bench_report.py target/bench/raw.jsonl --out docs   # this page again, from the raw results
```

The raw results (every round of every measurement) are left in `target/bench/raw.jsonl`; the plot
data in `target/bench/plot-*.dat` when the report is rendered with `--plot-data target/bench`.
""")
        return "\n".join(self.lines) + "\n"

    # ---------------------------------------------------- plot data
    def plot_data(self):
        """The rows of plot-calls.dat and plot-mem.dat (as the gnuplot data
        of the former script), or None when the sections are missing."""
        cf = self.cgfork
        need = [("0", v) for v in ("plain", "fg_empty", "fg_calls16", "fg_locks16", "atfork16", "atlocks16")]
        if any(k not in cf for k in need):
            return None
        b = cf[("0", "plain")]
        calls = ["# actions fg_calls atfork_calls fg_locks atfork_locks (instructions per fork over plain)"]
        for k in (0, 1, 4, 16):
            if k == 0:
                fg = fl = cf[("0", "fg_empty")]
                at = al = b
            else:
                fg, at = cf[("0", f"fg_calls{k}")], cf[("0", f"atfork{k}")]
                fl, al = cf[("0", f"fg_locks{k}")], cf[("0", f"atlocks{k}")]
            calls.append(f"{k} {s10(fg - b)} {s10(at - b)} {s10(fl - b)} {s10(al - b)}")
        mem = ["# MiB instr_over_plain plain_us plain_lo plain_hi fg_us fg_lo fg_hi"]
        for mib in self.raw.cfg_list("mem_sizes"):
            if (mib, "fg_calls4") not in cf or (mib, "fg_calls4") not in self.wfork:
                return None
            w0, w1 = self.wfork[(mib, "plain")], self.wfork[(mib, "fg_calls4")]
            mem.append(f"{mib} {s10(cf[(mib, 'fg_calls4')] - cf[(mib, 'plain')])} "
                       + " ".join(s10(x) for x in w0 + w1))
        return calls, mem


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", help="the raw file of scripts/bench.sh (target/bench/raw.jsonl)")
    ap.add_argument("--out", metavar="DIR", help="write DIR/BENCHMARKS.md and DIR/bench-overhead.svg")
    ap.add_argument("--plot-data", metavar="DIR", help="also write DIR/plot-calls.dat and DIR/plot-mem.dat")
    ap.add_argument("--bash-rounds", action="store_true", help="print scripts/bash-rounds.sh's summary")
    a = ap.parse_args()
    raw = Raw(a.raw)
    if a.bash_rounds:
        sys.stdout.write(bash_rounds_summary(raw))
        return
    rep = Report(raw)
    text = rep.render()
    data = rep.plot_data()
    if a.plot_data and data:
        os.makedirs(a.plot_data, exist_ok=True)
        for name, rows in zip(("plot-calls.dat", "plot-mem.dat"), data):
            with open(os.path.join(a.plot_data, name), "w", encoding="utf-8") as f:
                f.write("\n".join(rows) + "\n")
    if not a.out:
        sys.stdout.write(text)
        return
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "BENCHMARKS.md"), "w", encoding="utf-8") as f:
        f.write(text)
    if data:
        with open(os.path.join(a.out, "bench-overhead.svg"), "w", encoding="utf-8") as f:
            f.write(bench_plot.svg(*data))
    threads = bench_features.threads_points(raw)
    if threads:
        with open(os.path.join(a.out, "bench-threads.svg"), "w", encoding="utf-8") as f:
            f.write(bench_plot.svg_threads(threads))


if __name__ == "__main__":
    main()
