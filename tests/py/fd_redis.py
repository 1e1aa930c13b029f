"""fd_redis.py PORT N: one Redis connection, shared across a fork.

Opens one connection to 127.0.0.1:PORT (raw RESP, no client library),
forks, and has parent and child each send N `ECHO role-pid-i` commands at
the same time, checking that every reply is the one for its own request.

Before its first command the child looks at the inherited connection the
way client libraries' health checks do (a non-blocking peek): end-of-file
means the connection is dead, and the child reconnects. Any error (EOF,
EPIPE, a timeout, a protocol error) also makes it reconnect, at most three
times.

Prints one line per process: `ROLE ok=.. mismatch=.. errors=.. reconnects=..
eof=..`, and exits 0 (the test judges the numbers).
"""
import os
import socket
import sys
import time

PORT = int(sys.argv[1])
N = int(sys.argv[2])


class ProtocolError(Exception):
    pass


def connect():
    s = socket.create_connection(("127.0.0.1", PORT))
    s.settimeout(1.0)
    return s, s.makefile("rb")


def command(conn, *args):
    s, f = conn
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    s.sendall(b"".join(out))
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    if line[:1] == b"$":
        n = int(line[1:])
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise EOFError("short reply")
        return data[:-2].decode(errors="replace")
    if line[:1] == b"+":
        return line[1:-2].decode(errors="replace")
    raise ProtocolError(line[:40])


def is_eof(conn):
    """A health check: is there an end-of-file waiting on the socket?"""
    s, _ = conn
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        s.settimeout(1.0)


def main():
    conn = connect()
    assert command(conn, "PING") == "PONG"
    start = time.time() + 0.3
    pid = os.fork()
    role = "child" if pid == 0 else "parent"
    stats = {"ok": 0, "mismatch": 0, "errors": 0, "reconnects": 0, "eof": 0}
    if pid == 0 and is_eof(conn):
        stats["eof"] = 1
        conn = connect()
        stats["reconnects"] += 1
    time.sleep(max(0.0, start - time.time()))
    me = os.getpid()
    for i in range(N):
        token = "%s-%d-%d" % (role, me, i)
        try:
            reply = command(conn, "ECHO", token)
        except (EOFError, OSError, ProtocolError, ValueError):
            stats["errors"] += 1
            if stats["errors"] > 3:
                break
            conn = connect()
            stats["reconnects"] += 1
            continue
        if reply == token:
            stats["ok"] += 1
        else:
            stats["mismatch"] += 1
    line = role + " " + " ".join("%s=%d" % kv for kv in stats.items()) + "\n"
    os.write(1, line.encode())
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


main()
