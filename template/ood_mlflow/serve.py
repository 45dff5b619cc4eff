"""Replace script.sh with `mlflow server`, gate included (runs in the forked script)."""

from __future__ import annotations

import os
import shlex
import sys

from . import gate_app, settings
from .errors import LaunchError, report
from .server_command import server_argv, server_environment, static_prefix
from .store_checks import check_store
from .store_uri import parse_store


def allocated_cpus() -> int:
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def main() -> int:
    host, port = os.environ["host"], int(os.environ["port"])
    conf = settings.load()
    try:
        store = check_store(parse_store(conf.tracking_uri, settings.home()))
    except LaunchError as error:
        report(error)
        return 1
    env = dict(os.environ)
    env.update(server_environment(store))
    env.update({
        gate_app.ENV_PORT: str(port),
        gate_app.ENV_PREFIX: static_prefix(conf.proxy, host, port),
        gate_app.ENV_SECRET_FILE: str(settings.SESSION_DIR / settings.SECRET_FILE_NAME),
    })
    argv = [sys.executable, "-m", "mlflow"] + server_argv(store, host, port, conf.proxy, allocated_cpus())
    print("Starting: mlflow " + shlex.join(argv[3:]), flush=True)
    os.execve(sys.executable, argv, env)
    return 1  # not reached
