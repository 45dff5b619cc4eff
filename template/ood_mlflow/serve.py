"""Replace script.sh with `mlflow server`, gate included (runs in the forked script).

It follows the Plan preflight wrote to mlflow_session.json: which URI to open,
read-only or not.
"""

from __future__ import annotations

import os
import shlex
import sys

from . import gate_app, settings
from .server_command import server_argv, server_environment, static_prefix
from .store_plan import Plan


def allocated_cpus() -> int:
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def main() -> int:
    host, port = os.environ["host"], int(os.environ["port"])
    conf = settings.load()
    plan = Plan.from_dict(settings.load_plan())
    env = dict(os.environ)
    env.update(server_environment(plan.store_kind))
    env.update({
        gate_app.ENV_PORT: str(port),
        gate_app.ENV_PREFIX: static_prefix(conf.proxy, host, port),
        gate_app.ENV_READ_ONLY: "1" if plan.read_only else "",
    })
    argv = server_argv(plan.backend_uri, plan.artifact_root, host, port, conf.proxy, allocated_cpus(),
                       plan.registry_uri)
    print("Starting: mlflow " + shlex.join(argv), flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "mlflow"] + argv, env)
    return 1  # not reached
