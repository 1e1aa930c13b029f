"""fd_pg.py PORT N: one PostgreSQL connection (psycopg2), shared across a fork.

Connects to 127.0.0.1:PORT as postgres, forks, and has parent and child each
run N `SELECT 'role-pid-i'` queries at the same time, checking every result.
On an error the process reconnects (at most three times). At the end the
child closes its connection, as a well-behaved worker does at exit, and the
parent then runs one more query on its own original connection.

Without forkguard a process can wait forever for a reply the other one
read: a watchdog thread (libpq runs without the GIL) then prints the stats
with `hung=1` and ends that process (child after 8 s, parent after 12 s).

Prints `ROLE ok=.. mismatch=.. errors=.. reconnects=.. hung=..` per process
and `parent after=1|0`; exits 0 (the test judges the numbers).
"""
import os
import sys
import threading
import time

import psycopg2

PORT = int(sys.argv[1])
N = int(sys.argv[2])


def connect():
    c = psycopg2.connect(host="127.0.0.1", port=PORT, user="postgres", dbname="postgres", connect_timeout=5)
    c.autocommit = True
    return c


def main():
    conn = connect()
    first = conn
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    start = time.time() + 0.3
    pid = os.fork()
    role = "child" if pid == 0 else "parent"
    stats = {"ok": 0, "mismatch": 0, "errors": 0, "reconnects": 0, "hung": 0}

    def report():
        line = role + " " + " ".join("%s=%d" % kv for kv in stats.items()) + "\n"
        os.write(1, line.encode())

    def hung():
        stats["hung"] = 1
        report()
        os._exit(0)

    watchdog = threading.Timer(8.0 if pid == 0 else 12.0, hung)
    watchdog.daemon = True
    watchdog.start()
    time.sleep(max(0.0, start - time.time()))
    me = os.getpid()
    for i in range(N):
        token = "%s-%d-%d" % (role, me, i)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT %s::text", (token,))
                row = cur.fetchone()
        except (psycopg2.Error, OSError):
            stats["errors"] += 1
            if stats["errors"] > 3:
                break
            try:
                conn = connect()
            except psycopg2.Error:
                break
            stats["reconnects"] += 1
            continue
        if row is not None and row[0] == token:
            stats["ok"] += 1
        else:
            stats["mismatch"] += 1
    report()
    if pid == 0:
        # Closing sends Terminate on whatever socket the child holds.
        for c in {id(first): first, id(conn): conn}.values():
            try:
                c.close()
            except psycopg2.Error:
                pass
        os._exit(0)
    os.waitpid(pid, 0)
    try:
        with first.cursor() as cur:
            cur.execute("SELECT 42")
            after = cur.fetchone()[0] == 42
    except psycopg2.Error:
        after = False
    watchdog.cancel()
    os.write(1, b"parent after=%d\n" % after)


main()
