"""Start MLflow's web server, gate included, as the Plan says (runs in the forked script.sh).

On an MLflow version one_import.py has a proven adapter for, this process
imports MLflow's server once and serves it (serve_in_process.py); otherwise it
becomes `mlflow server` (server_command.py), which imports MLflow twice. The
path taken is printed in output.log and recorded in the Plan for the card.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import replace

from .one_import import CLI, Choice, ServerFlags, choose
from .server_command import GATE_APP, HOST, server_argv, server_environment, workers_for
from .session import Plan, read_plan, write_plan
from .store_uri import directory_url


def allocated_cpus() -> int:
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def server_flags(plan: Plan) -> ServerFlags:
    """The settings server_argv gives the CLI as flags, for the one-import server."""
    return ServerFlags(plan.backend_uri, plan.registry_uri, directory_url(plan.artifact_root), HOST, plan.port,
                       plan.prefix, GATE_APP)


def starting_line(choice: Choice, plan: Plan, argv: list) -> str:
    command = "mlflow " + shlex.join(argv)
    if choice.path == CLI:
        return f"Starting: the mlflow server CLI ({choice.reason}): {command}"
    return (f"Starting: the one-import server (MLflow {plan.mlflow_version}'s web app in this process, "
            f"{choice.adapter.server}; {choice.reason}), as this command would: {command}")


def main() -> int:
    plan = read_plan()
    cpus = allocated_cpus()
    argv = server_argv(plan.backend_uri, plan.artifact_root, plan.port, plan.prefix, cpus, plan.registry_uri)
    env = server_environment(plan.store_kind, plan.backend_uri)
    choice = choose(plan.mlflow_version, os.environ, workers_for(cpus))
    write_plan(replace(plan, server=choice.path, server_reason=choice.reason))
    print(starting_line(choice, plan, argv), flush=True)
    if choice.path == CLI:
        os.execve(sys.executable, [sys.executable, "-m", "mlflow"] + argv, dict(os.environ, **env))
        return 1  # not reached
    os.environ.update(env)
    from .serve_in_process import serve

    return serve(choice.adapter, server_flags(plan))
