"""A preloaded WSGI app for tests/python_servers.rs: the server imports it
in its master (gunicorn --preload, uWSGI without lazy-apps), so fghooks
and its engine are created there and inherited by every worker. Each
response says which worker answered and how often its engine was disposed
(by the [[python]] child hook, never by the app)."""

import os

import fghooks


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"pid={os.getpid()} disposed={fghooks.engine.disposed}\n".encode()]


app = application
