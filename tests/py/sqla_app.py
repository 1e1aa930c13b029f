"""A WSGI app with a module-level SQLAlchemy engine (psycopg2), used once
at import time: the master of a preloading server (gunicorn --preload)
keeps that connection in the engine's pool, and every worker inherits it.

The database is PostgreSQL on 127.0.0.1:$FGT_PG_PORT (user postgres, trust).
GET /ping answers without the database. GET /TOKEN runs
`SELECT TOKEN, pg_backend_pid()` and answers

    pid=WORKER n=K row=VALUE backend=BACKEND_PID     (K: this worker's Kth query)
    pid=WORKER n=K error=ExceptionType: first line of the message

always with 200 OK, so that the client judges every answer: VALUE is not
TOKEN when a worker read a reply meant for another process.

Used by tests/python_servers.rs and scene 10 of scripts/demo.sh, with
config/gunicorn-sqlalchemy.toml.
"""

import os

from sqlalchemy import create_engine, text

engine = create_engine(
    "postgresql+psycopg2://postgres@127.0.0.1:%d/postgres" % int(os.environ["FGT_PG_PORT"]),
    connect_args={"connect_timeout": 5},
)

# The master's own use of the database (a start-up check, a cache warm-up):
# the connection goes back to the pool and stays open.
with engine.connect() as _conn:
    _conn.execute(text("SELECT 1")).one()

_queries = 0


def application(environ, start_response):
    global _queries
    start_response("200 OK", [("Content-Type", "text/plain")])
    token = environ.get("PATH_INFO", "/").strip("/")
    if token in ("", "ping"):
        return [b"pong\n"]
    _queries += 1
    head = "pid=%d n=%d " % (os.getpid(), _queries)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT CAST(:t AS text), pg_backend_pid()"), {"t": token}).one()
        body = "row=%s backend=%d" % (row[0], row[1])
    except Exception as e:  # noqa: BLE001 (every failure is an answer)
        msg = (str(e).strip().splitlines() or [""])[0]
        body = "error=%s: %s" % (type(e).__name__, msg)
    return [(head + body + "\n").encode()]


app = application
