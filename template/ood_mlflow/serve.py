"""Start MLflow's web server, gate included, as the Plan says (runs in the forked script.sh).

On an MLflow version server/adapters.py has a proven adapter for, this process
imports MLflow's server once and serves it (server/in_process.py); otherwise it
becomes `mlflow server` (server/cli.py), which imports MLflow twice. The
path taken is printed in output.log and recorded in the Plan for the card.

Either way, this process first confines itself, and so everything it becomes
or starts, with the kernel's Landlock where the node has it (confinement/rules.py):
the server can then touch no file outside the store, its artifact roots and
the session's own folders, whatever a request makes MLflow do.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from .confinement import landlock
from .confinement.rules import REQUIRED, Environment, for_server, status_line, store_tree
from .errors import LaunchError, report
from .plan import Plan, read_plan, write_plan
from .server import node_local
from .server.adapters import CLI, Choice, choose
from .server.cli import ServerFlags, server_environment, session_flags, workers_for
from .session import SERVER_DIR, SESSION_DIR
from .stores.kinds import POSTGRESQL

PR_SET_PDEATHSIG = 1


def allocated_cpus() -> int:
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def server_flags(plan: Plan, cpus: int = 1) -> ServerFlags:
    return session_flags(plan.backend_uri, plan.artifact_root, plan.port, plan.prefix, cpus, plan.registry_uri)


def starting_line(choice: Choice, plan: Plan, argv: list) -> str:
    command = "mlflow " + shlex.join(argv)
    if choice.path == CLI:
        return f"Starting: the mlflow server CLI ({choice.reason}): {command}"
    return (f"Starting: the one-import server (MLflow {plan.mlflow_version}'s web app in this process, "
            f"{choice.adapter.server}; {choice.reason}), as this command would: {command}")


def postgres_reads(plan: Plan) -> tuple:
    """The files libpq reads for a PostgreSQL store: the password file, service file, certificates."""
    if plan.store_kind != POSTGRESQL:  # only libpq reads files of its own
        return ()
    home = os.path.expanduser("~")
    named = [value for _, value in parse_qsl(urlsplit(plan.backend_uri).query) if value.startswith("/")]
    return tuple([os.environ.get("PGPASSFILE") or os.path.join(home, ".pgpass"),
                  os.environ.get("PGSERVICEFILE") or os.path.join(home, ".pg_service.conf"),
                  os.path.join(home, ".postgresql")] + named)


def confine(plan: Plan, session_dir=SESSION_DIR) -> str:
    """Confine this process with Landlock as the Plan allows; returns the status line for output.log, which the
    Plan (for the card) holds too: written before the session's folder becomes read-only."""
    temp = node_local.make_folder("ood-mlflow-server-")  # the server's only temp folder
    os.environ["TMPDIR"] = temp
    tempfile.tempdir = None
    # The clean step removes it and stops this process (below any wrapper a container module adds).
    plan = replace(plan, scratch=plan.scratch + (temp,), server_pid=os.getpid())
    # MLflow writes relative to its working directory: for an SQLite URI filename (file:...?uri=true) it makes
    # the "parent folders" ./file:/... . Those land in a folder of the session's own, not in the session folder.
    work = session_dir / SERVER_DIR
    work.mkdir(mode=0o700, exist_ok=True)
    os.chdir(work)
    # MLflow 2.22 makes the default artifact root at start. Outside the store's tree (a PostgreSQL store's
    # ~/mlartifacts) it is made here, before the rules, which can only name what exists; inside, MLflow may.
    inside = any(os.path.commonpath([plan.artifact_root, tree]) == tree for tree in store_tree(plan.store_kind,
                                                                                               plan.store_path))
    if plan.artifact_root and not inside:
        try:
            os.makedirs(plan.artifact_root, exist_ok=True)
        except OSError:
            pass  # MLflow reports it as it would unconfined
    abi = landlock.abi_version()
    reason = "the kernel has no Landlock"
    if abi > 0:
        rules = for_server(plan, Environment.of_this_process(), str(session_dir), (temp, str(work)),
                           postgres_reads(plan))
        write_plan(replace(plan, files=status_line(abi)))
        try:
            landlock.restrict(rules, abi)
            return status_line(abi)
        except OSError as error:
            reason = f"Landlock refused: {error.strerror}"
    if plan.settings.confinement == REQUIRED:
        raise LaunchError(f"This compute node cannot confine the MLflow server to the store ({reason}), and the "
                          f"site requires it", "Ask your site's administrators which partitions offer Landlock "
                          "(Linux 5.13 or newer), or to set confinement: auto in the app's site.yml")
    write_plan(replace(plan, files=status_line(0, reason)))
    return status_line(0, reason)


def end_with_parent() -> None:
    """SIGTERM this process when its parent dies: OOD's clean_up signals only the job script's children, and
    a container module's wrapper (a shell that does not exec) is that child, not this interpreter."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    end_with_parent()
    # werkzeug's server (MLflow 2.x) has no SIGTERM handler: end through Python, so `finally` clauses run.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    plan = read_plan()
    cpus = allocated_cpus()
    flags = server_flags(plan, cpus)
    argv = flags.argv()
    env = server_environment(plan.store_kind, plan.backend_uri)
    choice = choose(plan.mlflow_version, os.environ, workers_for(cpus))
    plan = replace(plan, server=choice.path, server_reason=choice.reason)
    helper = slurm_helper(plan, choice)
    try:
        files = confine(plan)
    except LaunchError as error:
        report(error)
        return 1
    print(files, flush=True)
    print(starting_line(choice, plan, argv), flush=True)
    if choice.path == CLI:
        os.execve(sys.executable, [sys.executable, "-m", "mlflow"] + argv, dict(os.environ, **env))
        return 1  # not reached
    os.environ.update(env)
    from .server.in_process import serve

    return serve(choice.adapter, flags, choice.workers, plan, helper)


def slurm_helper(plan: Plan, choice: Choice):
    """The process that will ask Slurm about the jobs of RUNNING runs (slurm/lookup.py), started before this one
    confines itself; None where the look-up is off or cannot run in this process (the CLI path)."""
    if plan.slurm_runs == "off":
        return None
    if choice.path == CLI:
        print("Slurm runs: not looked up (the look-up runs in the one-import server, not the mlflow CLI)", flush=True)
        return None
    return subprocess.Popen([sys.executable, "-m", "ood_mlflow", "slurm-lookup"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, close_fds=True)
