"""The report's section on the features of issue 14 (lock reach, held
locks, spawned programs and child exits): scripts/bench/features.sh's
`feature` (callgrind) and `feature_value` (wall clock, memory, requests per
second) records, and the data of docs/bench-threads.svg.
"""

from bench_stats import by_round, fmt_delta, fmt_f, fmt_int, g10, order, paired_ratio, stats


def render(rep):
    """Appends the section to rep (a bench_report.Report)."""
    recs, vals = rep.raw.of("feature"), rep.raw.of("feature_value")
    if not recs and not vals:
        return
    md, raw = rep.md, rep.raw
    md("## New features (issue 14)")
    md()
    rep.text("""
What the features of the lock-reach, held-lock and spawn/exit issues cost, each against a base row
of the same harness (marked "base"). Instruction counts are callgrind's (user space, every thread of
the measured process; per operation = difference of the totals of two runs of different lengths over
the difference of the operations, start-up and exit cancelled out; a start-up row is one whole run).
Harnesses: `bench/lockpairs.c`, `bench/forkthreads.c`, `bench/spawnloop.c`, `bench/pyforkwriter.py`,
`bench/ompfork.c`. A row whose config `forkguard check` still rejects is listed under "Not measured
yet" instead.
""")
    md()
    if recs:
        md("| measure | variant | environment | command | instructions per operation | over the base row |")
        md("|---|---|---|---|--:|--:|")
        base = {}
        for r in recs:
            n1 = float(r["n1"])
            per = g10((float(r["t2"]) - float(r["t1"])) / (float(r["n2"]) - n1)) if n1 > 0 else float(r["t2"])
            if r["base"] == "yes":
                base[r["group"]] = per
                over = "base"
            else:
                over = fmt_delta(g10(per - base[r["group"]])) if r["group"] in base else "—"
            cell = fmt_int(per) if n1 == 0 else fmt_f(per, 1)
            md(f"| {r['what']} | {raw.label(r['v'])} | `{raw.env(r['v'])}` | `{r['cmd']}` | {cell} | {over} |")
        md()
        if threads_points(raw):
            md("![per-fork cost against threads and locks](bench-threads.svg)")
            md()
    if vals:
        md("Wall clock, memory and requests per second (median over the rounds; \"hangs\": children killed after")
        md("the harness's timeout, over all rounds; the ratio is the median of per-round ratios to the first row")
        md("of the same measure, rounds alternating):")
        md()
        md("| measure | variant | environment | command | rounds | median | range | hangs | ÷ first row |")
        md("|---|---|---|---|--:|--:|--:|--:|--:|")
        first = {}
        for (what, v) in order([dict(r, k=(r["what"], r["v"])) for r in vals], "k"):
            rows = [r for r in vals if r["what"] == what and r["v"] == v]
            s = by_round(rows, v, "value")
            ratio = "—"
            if what not in first:
                first[what] = s
            elif len(first[what]) == len(s):
                ratio = fmt_f(paired_ratio(s, first[what])[0], 3)
            med, lo, hi, _ = stats(s)
            unit = {"per_fork_us": " µs/fork", "maxrss_kb_median": " KiB", "rps": " req/s"}.get(rows[0]["unit"], "")
            hangs = sum(int(r["hangs"] or 0) for r in rows)
            md(f"| {what} | {raw.label(v)} | `{raw.env(v)}` | `{rows[0]['cmd']}` | {len(rows)} | {fmt_f(med, 1)}{unit} | {fmt_f(lo, 1)}–{fmt_f(hi, 1)} | {hangs} | {ratio} |")
        md()


def threads_points(raw):
    """(threads, locks, variant label, per fork) of the features'
    forkthreads rows (groups threads-T-L), for bench-threads.svg."""
    pts = []
    for r in raw.of("feature"):
        if r["group"].startswith("threads-"):
            _, t, k = r["group"].split("-")
            per = g10((float(r["t2"]) - float(r["t1"])) / (float(r["n2"]) - float(r["n1"])))
            pts.append((int(t), int(k), raw.label(r["v"]), per))
    return pts
