"""Try to bind the port again, as a restarted server would."""
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", port))
    s.listen()
    print(f"restart: bound port {port} again")
except OSError as e:
    print(f"restart: cannot bind port {port}: {e.strerror}")
    sys.exit(1)
