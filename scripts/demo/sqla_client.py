"""sqla_client.py PORT RUN: the client of demo scene 10.

Waits (at most 30 s) until the gunicorn server on 127.0.0.1:PORT answers
/ping, then sends 200 queries `GET /RUN-i` from 8 threads at once (each
waits at most 8 s; the run stops after 60 s) to tests/py/sqla_app.py, and
prints how many answers carried their own token (ok), another
query's row (wrong), an error, or nothing (lost), then an example of each kind
that is not ok.
"""
import re
import sys
import threading
import time
import urllib.request

PORT, RUN = int(sys.argv[1]), sys.argv[2]
QUERIES, CLIENTS = 200, 8


def get(path, wait):
    with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (PORT, path), timeout=wait) as r:
        return r.read().decode().strip()


deadline = time.time() + 30
while True:
    try:
        get("ping", 2)
        break
    except OSError:
        if time.time() > deadline:
            print("the server never answered")
            sys.exit(1)
        time.sleep(0.2)

counts = {"ok": 0, "wrong": 0, "errors": 0, "lost": 0}
example = {}
lock = threading.Lock()
todo = iter(range(QUERIES))
end = time.time() + 60


def client():
    while True:
        with lock:
            i = next(todo, None)
        if i is None:
            return
        token = "%s-%d" % (RUN, i)
        try:
            body = get(token, 8) if time.time() < end else None
        except OSError:
            body = None
        if body is None:
            kind, what = "lost", "no answer"
        elif " error=" in body:
            err = body.split(" error=", 1)[1]
            kind, what = "errors", re.sub(r"\(psycopg2\.\w+\) ", "", err)[:80]
        elif ("row=%s " % token) in body:
            kind, what = "ok", ""
        else:
            row = body.split("row=", 1)[-1].split()[0]
            kind, what = "wrong", "asked %s, got the row of %s" % (token, row)
        with lock:
            counts[kind] += 1
            example.setdefault(kind, what)


threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
line = " ".join("%s=%d" % kv for kv in counts.items())
notes = ["%s: %s" % (k, example[k]) for k in ("wrong", "errors", "lost") if k in example]
print(line)
for n in notes:
    print("      e.g. " + n)
