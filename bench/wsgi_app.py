"""wsgi_app: the application of the gunicorn benchmark of scripts/bench.sh
(issue 14): a prefork Python server, `gunicorn --preload` with 4 workers
recycled after a few hundred requests, so that the master forks all along.

Each request formats a line through `logging` (the logging module's lock and
the handler's, taken in every worker) and answers 200. Nothing in the master
holds a lock at a fork, so the server works without forkguard too: the
benchmark prices held_locks and libc_locks on a server that does not need
them. (A thread logging in the master makes the workers hang at their first
request without held_locks: that is a test, not a benchmark.)
"""

import logging
import os

log = logging.getLogger("fgb")
log.addHandler(logging.StreamHandler(open(os.devnull, "w")))
log.setLevel(logging.INFO)


def app(environ, start_response):
    log.info("request %s in %d", environ.get("PATH_INFO"), os.getpid())
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
