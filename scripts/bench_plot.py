"""docs/bench-overhead.svg from the plot data of scripts/bench_report.py.

Three panels, as the former gnuplot figure: instructions per fork over no
preload against the number of call and lock actions (forkguard and the
pthread_atfork floor); the same for 4 call actions against resident memory;
the wall clock per fork (median, min-max) against resident memory. Written
by hand (standard library only, no plotting package).
"""

import math
from xml.sax.saxutils import escape

W, H = 1200, 420
PANEL_W, TOP, BOTTOM = W / 3, 70, 360
COLORS = ("#9400d3", "#009e73", "#56b4e9", "#e69f00")


def nice_ticks(lo, hi, n=5):
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step / 2:
        ticks.append(round(t, 10))
        t += step
    return ticks


def log_ticks(lo, hi):
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def label(v):
    return f"{v:g}" if v < 1e6 else f"{v:.0e}"


class Panel:
    def __init__(self, index, title, xlabel, ylabel, xr, yr, xlog=False, ylog=False):
        self.x0 = index * PANEL_W + 80
        self.x1 = (index + 1) * PANEL_W - 20
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.xr, self.yr, self.xlog, self.ylog = xr, yr, xlog, ylog
        self.out = []
        self.legend = 0

    def _scale(self, v, r, log, a, b):
        lo, hi = r
        if log:
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        return a + (v - lo) / (hi - lo) * (b - a)

    def x(self, v):
        return self._scale(v, self.xr, self.xlog, self.x0, self.x1)

    def y(self, v):
        return self._scale(v, self.yr, self.ylog, BOTTOM, TOP)

    def axes(self, xticks, yticks):
        o = self.out
        for v, text in xticks:
            px = self.x(v)
            o.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{BOTTOM}" class="grid"/>')
            o.append(f'<text x="{px:.1f}" y="{BOTTOM + 16}" text-anchor="middle">{escape(text)}</text>')
        lo, hi = self.yr
        for v in (t for t in yticks if lo - 1e-9 <= t <= hi + 1e-9):
            py = self.y(v)
            o.append(f'<line x1="{self.x0}" y1="{py:.1f}" x2="{self.x1}" y2="{py:.1f}" class="grid"/>')
            o.append(f'<text x="{self.x0 - 6}" y="{py + 4:.1f}" text-anchor="end">{label(v)}</text>')
        o.append(f'<rect x="{self.x0}" y="{TOP}" width="{self.x1 - self.x0:.1f}" height="{BOTTOM - TOP}" class="frame"/>')
        cx = (self.x0 + self.x1) / 2
        for i, line in enumerate(self.title.split("\n")):
            o.append(f'<text x="{cx:.1f}" y="{TOP - 22 + 14 * i}" text-anchor="middle">{escape(line)}</text>')
        o.append(f'<text x="{cx:.1f}" y="{BOTTOM + 36}" text-anchor="middle">{escape(self.xlabel)}</text>')
        o.append(f'<text transform="translate({self.x0 - 58},{(TOP + BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(self.ylabel)}</text>')

    def series(self, points, title, color, errors=None):
        o = self.out
        pts = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points)
        o.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, (px, py) in enumerate(points):
            if errors:
                lo, hi = errors[i]
                o.append(f'<line x1="{self.x(px):.1f}" y1="{self.y(lo):.1f}" x2="{self.x(px):.1f}" '
                         f'y2="{self.y(hi):.1f}" stroke="{color}" stroke-width="1.5"/>')
            o.append(f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="3.5" fill="{color}"/>')
        ly = TOP + 16 + 16 * self.legend
        self.legend += 1
        o.append(f'<line x1="{self.x0 + 10}" y1="{ly - 4}" x2="{self.x0 + 34}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        o.append(f'<text x="{self.x0 + 40}" y="{ly}">{escape(title)}</text>')


def svg(calls_rows, mem_rows):
    calls = [[float(x) for x in r.split()] for r in calls_rows if not r.startswith("#")]
    mem = [[float(x) for x in r.split()] for r in mem_rows if not r.startswith("#")]
    panels = []

    ymax = max(max(r[1:]) for r in calls) * 1.1
    p = Panel(0, "instructions per fork over no preload,\nvs call and lock actions", "actions",
              "instructions per fork", (-0.3, 3.3), (0, ymax))
    p.axes([(i, str(int(r[0]))) for i, r in enumerate(calls)], nice_ticks(0, ymax))
    names = ("forkguard, calls", "pthread_atfork floor, calls", "forkguard, mutex locks",
             "pthread_atfork floor, mutex locks")
    for col, (name, color) in enumerate(zip(names, COLORS), 1):
        p.series([(i, r[col]) for i, r in enumerate(calls)], name, color)
    panels.append(p)

    lo, hi = min(r[1] for r in mem), max(r[1] for r in mem)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 1
    p = Panel(1, "instructions per fork over no preload,\nforkguard with 4 call actions, vs resident memory",
              "MiB allocated and touched", "instructions per fork", (5, 2048), (lo - pad, hi + pad), xlog=True)
    p.axes([(v, label(v)) for v in log_ticks(5, 2048)], nice_ticks(lo - pad, hi + pad))
    p.series([(r[0], r[1]) for r in mem], "forkguard, 4 calls", COLORS[0])
    panels.append(p)

    lo = min(min(r[3], r[6]) for r in mem) / 1.3
    hi = max(max(r[4], r[7]) for r in mem) * 1.3
    p = Panel(2, "wall clock per fork (median, min-max)\nvs resident memory", "MiB allocated and touched",
              "µs per fork", (5, 2048), (lo, hi), xlog=True, ylog=True)
    p.axes([(v, label(v)) for v in log_ticks(5, 2048)], log_ticks(lo, hi))
    p.series([(r[0], r[2]) for r in mem], "no preload", COLORS[1], [(r[3], r[4]) for r in mem])
    p.series([(r[0], r[5]) for r in mem], "forkguard, 4 calls", COLORS[0], [(r[6], r[7]) for r in mem])
    panels.append(p)

    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">',
        '<style>.grid { stroke: #d0d0d0; stroke-dasharray: 2,3 } '
        '.frame { fill: none; stroke: black }</style>',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">forkguard: per-fork overhead '
        '(callgrind, parent side; wall clock at right)</text>',
    ]
    return "\n".join(head + [line for p in panels for line in p.out] + ["</svg>"]) + "\n"


def svg_threads(points):
    """Per-fork instructions against locks held, one line per (threads
    alive, variant): points is [(threads, locks, label, per_fork)]."""
    width = 640
    series = {}
    for threads, locks, name, per in points:
        series.setdefault(f"{threads} threads waiting, {name}", []).append((locks, per))
    xs = sorted({p[1] for p in points})
    ymax = max(p[3] for p in points) * 1.15
    p = Panel(0, "instructions per fork (parent side, callgrind)\nvs mutexes held by the forking thread",
              "mutexes held", "instructions per fork", (-0.3, len(xs) - 0.7), (0, ymax))
    p.x0, p.x1 = 90, width - 20
    p.axes([(i, str(x)) for i, x in enumerate(xs)], nice_ticks(0, ymax))
    colors = COLORS + ("#d55e00", "#cc79a7", "#0072b2", "#000000")
    for (name, pts), color in zip(series.items(), colors):
        p.series([(xs.index(x), y) for x, y in sorted(pts)], name, color)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" '
        'font-family="sans-serif" font-size="11">',
        '<style>.grid { stroke: #d0d0d0; stroke-dasharray: 2,3 } '
        '.frame { fill: none; stroke: black }</style>',
        f'<rect width="{width}" height="{H}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">forkguard: per-fork cost against '
        'threads alive and locks held</text>',
    ]
    return "\n".join(head + p.out + ["</svg>"]) + "\n"
