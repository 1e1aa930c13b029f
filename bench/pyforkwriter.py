"""pyforkwriter: a Python fork loop with a writer thread, for scripts/bench.sh
(held-lock tracking, issue 14).

    python3 bench/pyforkwriter.py N [TIMEOUT_S]

A thread writes lines to a buffered file object without pause while the main
thread forks N times; each child writes one line to the same file object,
flushes it and leaves with os._exit(0). CPython (3.12 and older) guards a
buffered file with a lock that is a binary semaphore: when the writer held it
at the fork, the child waits for it forever. The parent waits up to
TIMEOUT_S (default 2) seconds for each child, then kills it and counts a
hang. Prints one line:
    "forks=N hangs=H loop_ns=NS per_fork_us=U"
(with held_locks = "acquire" or "reinit", hangs is 0).
"""

import os
import signal
import sys
import threading
import time


def main():
    n = int(sys.argv[1])
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    out = open(os.devnull, "w", buffering=1 << 16)
    stop = threading.Event()

    def writer():
        line = "x" * 100 + "\n"
        while not stop.is_set():
            out.write(line)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    hangs = 0
    t0 = time.monotonic_ns()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            out.write("child\n")
            out.flush()
            os._exit(0)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hangs += 1
                break
            time.sleep(0.0005)
    dt = time.monotonic_ns() - t0
    stop.set()
    t.join()
    print(f"forks={n} hangs={hangs} loop_ns={dt} per_fork_us={dt / 1000 / max(n, 1):.3f}")


if __name__ == "__main__":
    main()
