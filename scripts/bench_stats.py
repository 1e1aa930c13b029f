"""The statistics and number formats of forkguard's benchmark report, and
the reader of its raw file (scripts/bench.sh's target/bench/raw.jsonl).

Each function here replaces one of the awk programs of the former one-file
scripts/bench.sh and rounds as it did: intermediate values go through
printf "%.10g" (g10), medians and median absolute deviations are over the
sorted values, ratios are medians of per-round ratios. Standard library only.
"""

import collections
import json
import sys

# ------------------------------------------------------------- arithmetic --


def g10(x):
    """A value as awk's `printf "%.10g"` left it for the next step."""
    return float("%.10g" % x)


def s10(x):
    return "%.10g" % x


def median(vals):
    v = sorted(vals)
    n = len(v)
    return v[(n - 1) // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def stats(vals):
    """(median, min, max, mad) of numbers, as `stats` printed them."""
    v = sorted(float(x) for x in vals)
    m = median(v)
    mad = median([abs(x - m) for x in v])
    return g10(m), g10(v[0]), g10(v[-1]), g10(mad)


def paired_ratio(a, b):
    """(median, min, max) of a[i] / b[i]: rounds paired by position."""
    r = sorted(float(x) / float(y) for x, y in zip(a, b))
    return g10(median(r)), g10(r[0]), g10(r[-1])


def fmt_int(n):
    s = "%.0f" % float(n)
    sign = ""
    if s.startswith("-"):
        sign, s = "-", s[1:]
    out = ""
    while len(s) > 3:
        out = "," + s[-3:] + out
        s = s[:-3]
    return sign + s + out


def fmt_delta(n):
    s = fmt_int(n)
    return s if s.startswith("-") else "+" + s


def fmt_f(n, d=1):
    return "%.*f" % (d, float(n))


def fmt_pct(a, b):
    return "n/a" if float(b) == 0 else "%+.1f%%" % (100 * float(a) / float(b))


def fmt_spread(m, d):
    return "n/a" if float(m) == 0 else "±%.1f%%" % (100 * float(d) / float(m))


def ratio_pct(a, b):
    """The cell "vs X" of a wall-clock row: median of per-round ratios - 1."""
    return fmt_pct(g10(paired_ratio(a, b)[0] - 1), 1)


# ------------------------------------------------------------------ data --


class Raw:
    """The records of one raw file, indexed the ways the tables need."""

    def __init__(self, path):
        self.recs = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    try:
                        self.recs.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        sys.exit(f"bench_report: {path}:{n}: {e}")
        self.run = self.one("run")
        self.machine = self.one("machine")
        self.variants = {r["id"]: r for r in self.of("variant")}

    def of(self, kind, **match):
        return [r for r in self.recs if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]

    def one(self, kind, **match):
        rs = self.of(kind, **match)
        return rs[-1] if rs else {}

    def label(self, v):
        return self.variants[v]["label"]

    def env(self, v):
        return self.variants[v]["env"]

    def cfg(self, key):
        return self.run.get(key, "")

    def cfg_list(self, key):
        return self.cfg(key).split()


def order(recs, key="v"):
    """The distinct values of key in order of first appearance (round 0 of
    a rotated section is in the order the section listed its variants)."""
    seen = []
    for r in recs:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def by_round(recs, v, field="us"):
    return [r[field] for r in sorted((r for r in recs if r["v"] == v), key=lambda r: int(r["round"]))]


def bash_rounds_rows(bash):
    """(variant, median µs per run, ratio, q1, q3, Δ µs per fork) of
    bash_round records: scripts/bash-rounds.sh's statistics (whole µs per
    run, the median of per-round ratios and their quartiles)."""
    runs = collections.defaultdict(dict)
    for r in bash:
        runs[int(r["round"])][r["v"]] = int(r["ns"]) // 1000
    forks = 2 * int(bash[0]["iters"])
    plain = median([runs[r]["plain"] for r in runs])
    rows = [("plain", plain, 1.0, 1.0, 1.0, 0.0)]
    for v in order(bash):
        if v == "plain":
            continue
        ratios = sorted(runs[r][v] / runs[r]["plain"] for r in runs)
        q = len(ratios) // 4
        med = median([runs[r][v] for r in runs])
        rows.append((v, med, median(ratios), ratios[q], ratios[-q - 1], (med - plain) / forks))
    return rows


def bash_rounds_summary(raw):
    bash = raw.of("bash_round")
    if not bash:
        sys.exit("bench_report: no bash_round records")
    rows = bash_rounds_rows(bash)
    iters = bash[0]["iters"]
    forks = 2 * int(iters)
    out = [f"{len({r['round'] for r in bash})} rounds of {iters} iterations; no preload: {rows[0][1] / forks:.1f} us per fork (median)"]
    names = {"srv_bash_fg": "bashcfg", "fg_empty": "empty"}
    for v, med, ratio, q1, q3, dus in rows[1:]:
        out.append(f"{names.get(v, v):8} ratio {ratio:.3f} (quartiles {q1:.3f}-{q3:.3f}), {dus:+.1f} us per fork")
    return "\n".join(out) + "\n"
