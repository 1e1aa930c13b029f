"""A C library's global mutex held by a Python thread at os.fork().

    python3 lock_ctypes.py LIBPATH ITER CHILD_WAIT_S

LIBPATH is liblock_lib.so (tests/c/lock_lib.c), loaded with ctypes: a
Python thread calls locklib_hold() and keeps the lock while the main
thread forks; the child calls locklib_use(), which locks it. Without
forkguard the child blocks forever (the parent kills it after
CHILD_WAIT_S and counts it as hung).

Prints `result ok=N hung=N failed=N`.
"""

import ctypes
import os
import signal
import sys
import threading
import time
import warnings

# Python 3.12+ warns about fork() in a threaded process: that is the point.
warnings.simplefilter("ignore", DeprecationWarning)


def reap(pid, wait_s):
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


def main():
    lib = ctypes.CDLL(sys.argv[1])
    iters = int(sys.argv[2])
    wait_s = float(sys.argv[3])
    counts = {"ok": 0, "hung": 0, "failed": 0}
    for _ in range(iters):
        held = threading.Event()
        done = threading.Event()

        def holder():
            lib.locklib_hold()
            held.set()
            done.wait()
            lib.locklib_release()

        t = threading.Thread(target=holder)
        t.start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            lib.locklib_use()
            os._exit(0)
        done.set()
        t.join()
        counts[reap(pid, wait_s)] += 1
    print("result ok={ok} hung={hung} failed={failed}".format(**counts), flush=True)


if __name__ == "__main__":
    main()
