"""A server that starts a helper with system() (os.system), then stops.

os.system runs /bin/sh through glibc's system(), which uses posix_spawn: no
fork() happens in the server, so fork-time fd actions never see it. The
helper (`sleep`) inherits the listening socket and keeps the port after the
server is gone. `spawn = true` on the [[fd]] action leaves it out.
"""
import os
import socket
import sys

port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
os.set_inheritable(srv.fileno(), True)  # as many servers' sockets are
os.system(f"sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {sys.argv[2]}")
print(f"server: listening on {port}, helper started with system(), server exits")
