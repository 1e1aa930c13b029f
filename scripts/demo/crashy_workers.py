"""A prefork server whose second worker crashes.

Three workers are forked; worker 1 dies of SIGSEGV after about 0.3 s,
the others exit normally. The server reaps them itself; with
`log_exits = true` forkguard's log shows each exit, its signal and its
lifetime, without taking the statuses from the server.
"""
import os
import signal
import time

pids = []
for n in range(3):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3 * (n + 1))
        if n == 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
    print(f"server: worker {pid} ended, {how}")
time.sleep(0.2)  # the exit lines come from forkguard's watcher thread
