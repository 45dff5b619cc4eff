"""Replace script.sh with `mlflow server`, gate included (runs in the forked script).

It follows the session's Plan (session.py): which URI to open, where, and how;
the gate MLflow loads reads the same Plan.
"""

from __future__ import annotations

import os
import shlex
import sys

from .server_command import server_argv, server_environment
from .session import read_plan


def allocated_cpus() -> int:
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def main() -> int:
    plan = read_plan()
    env = dict(os.environ)
    env.update(server_environment(plan.store_kind, plan.backend_uri))
    argv = server_argv(plan.backend_uri, plan.artifact_root, plan.port, plan.prefix, allocated_cpus(),
                       plan.registry_uri)
    print("Starting: mlflow " + shlex.join(argv), flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "mlflow"] + argv, env)
    return 1  # not reached
