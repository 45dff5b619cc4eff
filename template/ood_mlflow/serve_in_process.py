"""Serve MLflow's web app, the gate around it, in this process: what one_import's adapter says, done.

The order matters: the environment first (mlflow.server reads it while it
builds the app: static prefix, security middleware, stores), then the one
import, the CLI's store set-up, and the web server on the `ood-gate` app
MLflow's entry point names, as the CLI's child process would run it.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import uuid

from . import auth_stand_in
from .one_import import Adapter, ServerFlags
from .server_command import APP_NAME


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


def run(adapter: Adapter, options: dict) -> None:
    if adapter.server == "uvicorn":
        import uvicorn

        # What `python -m uvicorn` runs with the CLI's flags, but no access log: any process on the node can
        # send requests, and a line for each refused one would let it grow output.log without end.
        uvicorn.run(**options, access_log=False)
        return
    serve_wsgi(options)


def serve_wsgi(options: dict) -> None:
    """MLflow 2.x's Flask app behind the gate, on werkzeug's threaded server (Flask's own dependency).

    A thread per connection: with one request at a time (like the CLI's one gunicorn sync worker),
    any process on the node that opens a connection and sends nothing would hold up the session.
    The cost: CPU-bound requests sent at once share the GIL (README, Performance)."""
    from werkzeug.serving import make_server

    module, _, factory = options["app"].removesuffix("()").partition(":")
    app = getattr(importlib.import_module(module), factory)()
    host, _, port = options["bind"].rpartition(":")
    # Quiet like gunicorn: no line per request in output.log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, int(port), app, threaded=True)
    print(f"Listening at: http://{options['bind']} (werkzeug, one process)", flush=True)
    server.serve_forever()


def serve(adapter: Adapter, flags: ServerFlags, plan=None, slurm_helper=None) -> int:
    options = prepare(adapter, flags)
    if slurm_helper is not None:  # after the one import, in the background: RUNNING runs whose Slurm job ended
        from . import slurm_sweep

        slurm_sweep.start(plan, slurm_helper)
    run(adapter, options)
    return 0
