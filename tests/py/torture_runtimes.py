"""Python's ways of starting a process, under forkguard (tests/torture_runtimes.rs).

    torture_runtimes.py MODE MARKER

The parent opens MARKER (an inheritable descriptor); the test's config turns it
into /dev/null in a forked child ([[fd]] devnull) and names the child
([child] name). Each mode prints `ok pid=PID mode=MODE target=T` where T is
what the new process saw at MARKER_FD: `/dev/null` when forkguard's child
phase ran, the marker's path when it did not (vfork / posix_spawn paths).
"""

import os
import subprocess
import sys

READ_FD = "import os,sys; print(os.readlink('/proc/self/fd/' + sys.argv[1]))"


def spawned_target(fd, **kw):
    out = subprocess.run(
        [sys.executable, "-c", READ_FD, str(fd)],
        pass_fds=[fd],
        stdout=subprocess.PIPE,
        check=True,
        **kw,
    )
    return out.stdout.decode().strip()


def main():
    mode = sys.argv[1]
    fd = os.open(sys.argv[2], os.O_RDONLY)
    os.set_inheritable(fd, True)
    if mode == "subprocess":
        # vfork (CPython 3.10+) or posix_spawn: no phases by default.
        target = spawned_target(fd)
    elif mode == "subprocess_preexec":
        # preexec_fn forces fork + exec: all three phases.
        target = spawned_target(fd, preexec_fn=lambda: None)
    elif mode == "posix_spawn":
        r, w = os.pipe()
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-c", READ_FD, str(fd)],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)],
        )
        os.close(w)
        target = os.read(r, 4096).decode().strip()
        os.waitpid(pid, 0)
    elif mode == "os_system":
        r, w = os.pipe()
        os.set_inheritable(w, True)
        status = os.system(f"readlink /proc/self/fd/{fd} >&{w}")
        os.close(w)
        target = os.read(r, 4096).decode().strip()
        assert status == 0, status
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(f"ok pid={os.getpid()} mode={mode} target={target}", flush=True)


main()
