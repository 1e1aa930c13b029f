"""Python fixture for [[python]] (SPEC 8.7).

    py_hooks.py os_fork N      N forks with os.fork; each child exits 0
    py_hooks.py mp_fork N      N multiprocessing.Process (start method "fork")
    py_hooks.py no_import N    os.fork without importing fghooks first

The program imports fghooks from tests/py/hookmods (unless no_import), so a
`call` entry finds it in sys.modules. Every child writes "child-main PID
PPID" after its own code ran; the parent writes "reaped CHILD STATUS" and
"done PID" at the end, and exits 0 when every child exited 0.
"""

import multiprocessing
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "hookmods"))
mode, n = sys.argv[1], int(sys.argv[2])
if mode != "no_import":
    import fghooks
else:
    fghooks = None


def trace(word, *more):
    fd = os.open(os.environ["FGT_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (" ".join([word, str(os.getpid())] + [str(m) for m in more]) + "\n").encode())
    os.close(fd)


def in_child():
    trace("child-main", os.getppid())


def main():
    bad = 0
    if mode in ("os_fork", "no_import"):
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                in_child()
                os._exit(0)
            _, st = os.waitpid(pid, 0)
            trace("reaped", pid, os.waitstatus_to_exitcode(st))
            bad += os.waitstatus_to_exitcode(st) != 0
    else:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=in_child) for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            trace("reaped", p.pid, p.exitcode)
            bad += p.exitcode != 0
    trace("done")
    return 1 if bad else 0


sys.exit(main())
