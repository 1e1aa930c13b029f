"""Python fixture: forks the ways a Python program does.

    forks.py os_fork     os.fork once
    forks.py pty_fork    pty.fork once (glibc forkpty underneath)
    forks.py mp_fork N   N multiprocessing.Process with the "fork" start method

Every child checks its own name (/proc/self/comm) against $FGT_EXPECT_NAME,
the [child] name forkguard should have given it, and exits 0 when it
matches, 3 when it does not. The parent prints "ok KIND" when every child
exited 0, otherwise "bad KIND ..." and exits 1.
"""

import multiprocessing
import os
import pty
import sys

EXPECT = os.environ.get("FGT_EXPECT_NAME", "")


def comm():
    with open("/proc/self/comm") as f:
        return f.read().strip()


def child_status():
    return 0 if comm() == EXPECT else 3


def os_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(child_status())
    _, st = os.waitpid(pid, 0)
    return [os.waitstatus_to_exitcode(st)]


def pty_fork():
    pid, fd = pty.fork()
    if pid == 0:
        os._exit(child_status())
    # Drain the terminal until the child is gone (EOF or EIO).
    try:
        while os.read(fd, 1024):
            pass
    except OSError:
        pass
    _, st = os.waitpid(pid, 0)
    os.close(fd)
    return [os.waitstatus_to_exitcode(st)]


def mp_target():
    sys.exit(child_status())


def mp_fork(n):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=mp_target) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    return [p.exitcode for p in procs]


def main():
    kind = sys.argv[1]
    if kind == "os_fork":
        codes = os_fork()
    elif kind == "pty_fork":
        codes = pty_fork()
    elif kind == "mp_fork":
        codes = mp_fork(int(sys.argv[2]))
    else:
        print("unknown kind", kind)
        return 2
    if all(c == 0 for c in codes):
        print("ok", kind, "pid=%d" % os.getpid())
        return 0
    print("bad", kind, codes)
    return 1


if __name__ == "__main__":
    sys.exit(main())
