"""pyforkloop: a plain Python fork loop, for scripts/bench.sh (the per-fork
cost of `[[python]]` entries, issue 16).

    python3 bench/pyforkloop.py N

The main thread forks N times; each child leaves at once with os._exit(0),
and the parent waits for it. Prints one line:
    "forks=N loop_ns=NS per_fork_us=U"
"""

import os
import sys
import time


def main():
    n = int(sys.argv[1])
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    ns = time.perf_counter_ns() - t0
    print("forks=%d loop_ns=%d per_fork_us=%.3f" % (n, ns, ns / n / 1000.0))


main()
