"""A Python child stuck on a threading.Lock held by another thread at the
fork (CPython 3.11: a binary semaphore). Prints "ready PID" (the child) and
sleeps until killed; tests/why.rs runs `forkguard why PID`."""
import os
import threading
import time

lock = threading.Lock()
held = threading.Event()


def holder():
    with lock:
        held.set()
        time.sleep(3600)


threading.Thread(target=holder, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    lock.acquire()
    os._exit(0)
print("ready", pid, flush=True)
time.sleep(3600)
