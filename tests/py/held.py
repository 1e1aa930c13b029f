"""Python threads hold CPython's own locks (semaphores) at os.fork().

    held.py SCENE FORKS CHILD_TIMEOUT_S [OUTDIR]

A thread keeps taking a lock (or writing to a buffered file) while the main
thread forks; each child then takes the same lock (or writes to the same
file) and exits. The parent kills a child that does not finish in time.
Last line: forks N hung H failed F

Scenes:
  lock          threading.Lock held around time.sleep (GIL released)
  file          a buffered file object written from a thread
  stdout        print() of large lines to sys.stdout (a file) from a thread
  logging       logging.FileHandler used from a thread
  other-release a Lock taken by one thread and released by another, then
                held by a third at the fork
  pool          multiprocessing.Pool (fork) created while a thread writes
                to a buffered file; the workers write to it too
"""
import logging
import os
import sys
import threading
import time

scene, forks, tmo = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
outdir = sys.argv[4] if len(sys.argv) > 4 else "/tmp"
stop = threading.Event()
ready = threading.Event()
lock = threading.Lock()
f = open(os.path.join(outdir, "held-py.out"), "w", buffering=1 << 16)
log = logging.getLogger("held")
log.propagate = False


def sleeper():
    while not stop.is_set():
        with lock:
            ready.set()
            time.sleep(0.002)


def writer():
    while not stop.is_set():
        f.write("x" * 200 + "\n")
        ready.set()


def printer():
    while not stop.is_set():
        print("y" * 262144)
        ready.set()


def logger():
    h = logging.FileHandler(os.path.join(outdir, "held-py.log"))
    log.addHandler(h)
    log.setLevel(logging.INFO)
    while not stop.is_set():
        log.info("z" * 100)
        ready.set()


held_by_third = threading.Event()


def other_release():
    # Taken here, released by the main thread, then taken and kept by a
    # third thread at each fork.
    lock.acquire()
    threading.Thread(target=lock.release).start()
    go = threading.Event()

    def third():
        while not stop.is_set():
            with lock:
                ready.set()
                time.sleep(0.002)

    threading.Thread(target=third, daemon=True).start()


def child():
    if scene in ("lock", "other-release"):
        with lock:
            pass
    elif scene == "file":
        f.write("child\n")
        f.flush()
    elif scene == "stdout":
        print("child", flush=True)
    elif scene == "logging":
        log.info("child")


def wait(pid):
    deadline = time.monotonic() + tmo
    while True:
        r, st = os.waitpid(pid, os.WNOHANG)
        if r:
            return 0 if os.waitstatus_to_exitcode(st) == 0 else 1
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.001)


def write_in_pool(i):
    f.write("worker %d\n" % i)
    f.flush()
    return i


def main():
    hung = failed = 0
    if scene == "pool":
        import multiprocessing as mp
        threading.Thread(target=writer, daemon=True).start()
        ready.wait()
        ctx = mp.get_context("fork")
        for n in range(forks):
            pool = ctx.Pool(2)
            res = pool.map_async(write_in_pool, range(4))
            try:
                if res.get(tmo) != list(range(4)):
                    failed += 1
            except Exception:
                hung += 1
            pool.terminate()
            pool.join()
        stop.set()
        print("forks", forks, "hung", hung, "failed", failed, flush=True)
        os._exit(0)
    out_fd = os.dup(1)
    if scene == "stdout":
        os.dup2(os.open(os.path.join(outdir, "held-py.stdout"),
                        os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    target = {"lock": sleeper, "file": writer, "stdout": printer,
              "logging": logger, "other-release": None}[scene]
    if target:
        threading.Thread(target=target, daemon=True).start()
    else:
        other_release()
    ready.wait()
    for n in range(forks):
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(0)
        r = wait(pid)
        if r < 0:
            hung += 1
        elif r > 0:
            failed += 1
    stop.set()
    os.write(out_fd, b"forks %d hung %d failed %d\n" % (forks, hung, failed))
    os._exit(0)


main()
