"""Targets of the [[python]] entries in tests/python_hooks.rs.

Each appends "WORD PID [MORE]" to $FGT_TRACE with one os.write (the same
format as the C fixtures' trace.h). Importing the module writes
"imported PID": a `call` on a module the program already imported must not
import it a second time.
"""

import os
import sys

_FD = os.open(os.environ["FGT_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def trace(word, *more):
    os.write(_FD, (" ".join([word, str(os.getpid())] + [str(m) for m in more]) + "\n").encode())


trace("imported")


def prepare():
    trace("hook-prepare")


def parent():
    trace("hook-parent")


def child():
    trace("hook-child")


def child2():
    trace("hook-child2")


def boom():
    trace("hook-boom")
    raise RuntimeError("boom in the child")


def thread_and_import():
    """After CPython's own after-fork work: a new thread can start, and take
    the import lock (it imports a module no one imported yet)."""
    import threading

    got = []

    def work():
        import decimal  # noqa: F401 (the import is the point)

        got.append(threading.current_thread() is not threading.main_thread())

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    trace("hook-thread", int(got == [True] and "decimal" in sys.modules))


class Engine:
    """A stand-in for SQLAlchemy's engine: `fghooks:engine.dispose`."""

    def __init__(self):
        self.disposed = 0

    def dispose(self):
        self.disposed += 1
        trace("hook-dispose", self.disposed)


engine = Engine()
