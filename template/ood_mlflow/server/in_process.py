"""Serve MLflow's web app, the gate around it, in this process: what one_import's adapter says, done.

The order matters: the environment first (mlflow.server reads it while it
builds the app: static prefix, security middleware, stores), then the one
import, the CLI's store set-up, and the web server on the `ood-gate` app
MLflow's entry point names, as the CLI's child process would run it.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import sys
import threading
import uuid

from ..gate.bodies import MAX_INSPECTED_BODY
from . import auth_stand_in, prefork
from .adapters import Adapter
from .cli import APP_NAME, ServerFlags


def prepare(adapter: Adapter, flags: ServerFlags) -> dict:
    """Set up everything `mlflow server` would before its web server starts; returns the server's options."""
    os.environ.update(adapter.environment(flags, uuid.uuid4().hex))
    import mlflow.server  # the one import of MLflow's server, with its settings in place

    auth_stand_in.install(adapter.auth_names)  # before the first request: no failing import per request

    try:
        for target, args, kwargs in adapter.setup_calls(flags):
            module, name = target.split(":")
            getattr(importlib.import_module(module), name)(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported as the CLI reports it, then the job ends
        logger = logging.getLogger("mlflow.cli")
        logger.error("Error initializing backend store")
        logger.exception(error)
        sys.exit(1)
    app = mlflow.server._find_app(APP_NAME)  # the entry point, as --app-name finds it
    if app != flags.app:
        raise RuntimeError(f"MLflow's entry point {APP_NAME} is {app}, not {flags.app}")
    log_config = str(getattr(mlflow.server, "_UVICORN_LOG_CONFIG", ""))
    return adapter.server_options(flags, log_config)


def run(adapter: Adapter, options: dict, workers: int = 1, background=None) -> int:
    """Serve in this process, or, for several workers, fork them from it once the app is built. `background`
    (a job for after the start) runs in a thread of this process, or beside forked workers in a process of its
    own: a fork of a process with a thread inside could inherit a lock that thread held."""
    serve_one = uvicorn_server(options) if adapter.server == "uvicorn" else werkzeug_server(options)
    if workers <= 1:
        if background:
            threading.Thread(target=background, name="ood-mlflow-background", daemon=True).start()
        serve_one(None)
        return 0
    host, port = (options["host"], options["port"]) if "host" in options else _bind(options)
    return prefork.serve_forked(workers, prefork.listening_socket(host, int(port)), serve_one, background)


def _bind(options: dict) -> tuple:
    host, _, port = options["bind"].rpartition(":")
    return host, int(port)


def uvicorn_server(options: dict):
    """What `python -m uvicorn` runs with the CLI's flags, but no access log: any process on the node can send
    requests, and a line for each refused one would let it grow output.log without end. The app (gate and
    MLflow) is built here, before any worker is forked."""
    import uvicorn

    options = dict(options)
    sys.path.insert(0, options.pop("app_dir"))  # as uvicorn.run() does with it
    config = uvicorn.Config(**options, access_log=False)
    config.load()

    def serve_one(sock):
        server = uvicorn.Server(config)
        server.run(sockets=[sock] if sock else None)
        if not server.started:
            sys.exit(3)  # as uvicorn.run() ends when the app could not start

    return serve_one


def werkzeug_server(options: dict):
    """MLflow 2.x's Flask app behind the gate, on werkzeug's threaded server (Flask's own dependency).

    A thread per connection reads each request, so a process on the node that opens connections and sends
    nothing holds up no one (with gunicorn's one sync worker, as the CLI runs it, it would). The app itself
    computes one request at a time, as that worker does: CPU-bound searches sent at once would otherwise share
    the GIL and all finish late (README, Performance)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    module, _, factory = options["app"].removesuffix("()").partition(":")
    app = one_at_a_time(getattr(importlib.import_module(module), factory)())
    host, port = _bind(options)
    # Quiet like gunicorn: no line per request in output.log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    class Handler(WSGIRequestHandler):
        disable_nagle_algorithm = True  # werkzeug writes head and body apart; Nagle would hold the body back

    def serve_one(sock):
        server = make_server(host, port, app, threaded=True, request_handler=Handler,
                             fd=sock.fileno() if sock else None)
        print(f"Listening at: http://{options['bind']} (werkzeug, pid {os.getpid()})", flush=True)
        server.serve_forever()

    return serve_one


def one_at_a_time(app, most_read: int = MAX_INSPECTED_BODY + 1):
    """The WSGI app, computing one request at a time. A request's body (as much as the gate reads) is read before
    its turn, so a slow sender waits alone; the answer is sent after it, so a slow reader does too."""
    turn = threading.Lock()

    def serve(environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 0:
            body = environ["wsgi.input"].read(min(length, most_read))
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        with turn:
            return app(environ, start_response)

    return serve


def serve(adapter: Adapter, flags: ServerFlags, workers: int = 1, plan=None, slurm_helper=None) -> int:
    options = prepare(adapter, flags)
    background = None
    if slurm_helper is not None:  # after the one import: RUNNING runs whose Slurm job ended
        from ..slurm import sweep

        background = sweep.Sweep(plan, slurm_helper)
    return run(adapter, options, workers, background)
