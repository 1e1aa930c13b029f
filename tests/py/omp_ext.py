"""Python fixture: an OpenMP-built extension (a -fopenmp shared object, via
ctypes) and os.fork.

    omp_ext.py LIB FORKS DEADLINE_MS

Each round the parent runs a parallel region in LIB (libgomp's pool is then
alive), forks, and the child runs one too. A child still running after
DEADLINE_MS is killed and counted as hung. Prints
"omp-py forks=N ok=K hung=H" and exits 0.
"""

import ctypes
import os
import select
import signal
import sys


def main():
    lib = ctypes.CDLL(sys.argv[1])
    lib.omp_sum.restype = ctypes.c_long
    forks, deadline = int(sys.argv[2]), int(sys.argv[3])
    ok = hung = 0
    for _ in range(forks):
        assert lib.omp_sum(4) == 10
        pid = os.fork()
        if pid == 0:
            os._exit(0 if lib.omp_sum(4) == 10 else 3)
        fd = os.pidfd_open(pid)
        ready, _, _ = select.select([fd], [], [], deadline / 1000)
        os.close(fd)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        _, st = os.waitpid(pid, 0)
        if not ready:
            hung += 1
        elif os.waitstatus_to_exitcode(st) == 0:
            ok += 1
    print(f"omp-py forks={forks} ok={ok} hung={hung}", flush=True)


main()
