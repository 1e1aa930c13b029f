"""A server that hands work to a long-lived helper process, then stops.

The helper (here `sleep`) inherits the server's listening socket through
fork+exec. After the server exits, the port stays bound by a process that
never accepts on it: a restarted server cannot bind it again.
"""
import os
import socket
import sys

port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
os.set_inheritable(srv.fileno(), True)  # as many servers' sockets are (e.g. socket activation)
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execvp("sleep", ["sleep", "30"])
print(f"server: listening on {port}, helper {pid} started, server exits")
with open(sys.argv[2], "w") as f:
    f.write(str(pid))
