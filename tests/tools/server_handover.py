"""What MLflow's web server is handed, by the real `mlflow server` CLI or by the one-import adapter, as JSON.

    python server_handover.py cli|adapter FLAGS_JSON     (an MLflow environment's python, ood_mlflow on PYTHONPATH)

FLAGS_JSON: {"backend_uri", "registry_uri", "artifact_root", "store_kind", "port", "prefix", "cpus"}.

cli: runs MLflow's own click command `server` in this process with the flags
cli.ServerFlags.argv gives and the environment server_environment gives,
up to the moment it would start its web server (MLflow's _exec_cmd is replaced
by a recorder), and prints what that web server would get: the environment it
inherits (this process's, as the CLI changed it, plus the CLI's extra_env), the
set-up calls the CLI made, the web server's settings parsed by the web
server's own command-line parser, and the environment variables the `server`
command reads as its options.

adapter: does the same session's one_import adapter set-up for real
(in_process.prepare) and prints the same three things.

Both watch the set-up functions with sys.setprofile, so a call is seen however
it was imported. Used by tests/template/ood_mlflow/server/test_one_import.py.
"""

from __future__ import annotations

import json
import os
import sys

WATCHED = {  # set-up functions of MLflow's CLI (2.22, 3.17) that matter to the web server
    "mlflow.server.handlers:initialize_backend_stores",
    "mlflow.server.handlers:initialize_workspace_store",
    "mlflow.tracing.trace_rollup_service:validate_sql_trace_rollup_startup",
    "mlflow.server.jobs.utils:_check_requirements",
    "mlflow.server.jobs.utils:_launch_job_execution_runner",
    "mlflow.server:_bootstrap_basic_auth",
}


class Calls:
    def __init__(self):
        self.seen = []

    def __enter__(self):
        sys.setprofile(self.profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)

    def profile(self, frame, event, arg):
        if event != "call":
            return
        name = f"{frame.f_globals.get('__name__')}:{frame.f_code.co_name}"
        if name in WATCHED:
            code = frame.f_code
            count = code.co_argcount + code.co_kwonlyargcount
            self.seen.append([name, {n: frame.f_locals[n] for n in code.co_varnames[:count]}])


def environment_changes(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if before.get(k) != v}


def cli(flags, base: dict) -> dict:
    import mlflow.server

    from ood_mlflow.server.cli import session_flags

    started = {}

    class Process:
        pid = 0

        def poll(self):
            return 0

        def wait(self):
            return 0

        def send_signal(self, signum):
            pass

    def exec_cmd(cmd, extra_env=None, **kwargs):
        started.update(command=list(cmd), extra_env=dict(extra_env or {}), environ=dict(os.environ))
        return Process()

    mlflow.server._exec_cmd = exec_cmd
    from mlflow.cli import cli as mlflow_cli

    argv = session_flags(flags["backend_uri"], flags["artifact_root"], flags["port"], flags["prefix"], flags["cpus"],
                         flags["registry_uri"]).argv()
    with Calls() as calls:
        mlflow_cli.main(args=argv, prog_name="mlflow", standalone_mode=False)
    inherited = dict(started["environ"], **started["extra_env"])
    from mlflow.cli import server

    return {"environment": environment_changes(base, inherited), "calls": calls.seen,
            "server": parse_server_command(started["command"]),
            "variables": sorted(p.envvar for p in server.params if p.envvar)}


def parse_server_command(command: list) -> dict:
    """[python, -m, uvicorn|gunicorn, ...] as the keywords that server's own parser makes of it."""
    kind, args = command[2], command[3:]
    if kind == "uvicorn":
        import uvicorn.main  # noqa: F401 -- loads the module; its name is shadowed by the click command

        module = sys.modules["uvicorn.main"]  # the name uvicorn.main is its click command
        got = {}
        real = module.run
        module.run = lambda app, **kwargs: got.update(kwargs, app=app)
        try:
            module.main.main(args=args, standalone_mode=False)
        finally:
            module.run = real
        return run_arguments(got)
    from gunicorn.config import Config

    parsed = Config().parser().parse_args(args)
    return {"kind": kind, "bind": ",".join(parsed.bind), "workers": parsed.workers, "app": " ".join(parsed.args)}


def run_arguments(kwargs: dict) -> dict:
    """Every keyword uvicorn.run() gets, its defaults filled in."""
    import inspect

    import uvicorn

    defaults = {name: p.default for name, p in inspect.signature(uvicorn.run).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return dict(defaults, **kwargs, kind="uvicorn")


def adapter(flags, base: dict) -> dict:
    import importlib.metadata

    from ood_mlflow.plan import Plan
    from ood_mlflow.serve import server_flags
    from ood_mlflow.server import in_process
    from ood_mlflow.server.adapters import choose

    version = importlib.metadata.version("mlflow")
    chosen = choose(version, {})
    plan = Plan(version, flags["store_kind"], "", "", flags["backend_uri"], flags["artifact_root"],
                registry_uri=flags["registry_uri"], port=flags["port"], prefix=flags["prefix"])
    with Calls() as calls:
        options = in_process.prepare(chosen.adapter, server_flags(plan))
    if chosen.adapter.server == "uvicorn":
        server = run_arguments(options)
    else:
        server = dict(options, kind="gunicorn")  # the CLI's server, whose settings werkzeug's server takes over
    return {"environment": environment_changes(base, dict(os.environ)), "calls": calls.seen, "server": server,
            "adapter": chosen.adapter.name}


def main():
    mode, flags = sys.argv[1], json.loads(sys.argv[2])
    from ood_mlflow.server.cli import server_environment

    os.environ.update(server_environment(flags["store_kind"], flags["backend_uri"]))  # as serve.main() does
    base = dict(os.environ)
    out, sys.stdout = sys.stdout, sys.stderr  # what the CLI prints (click.echo) is not the answer
    result = cli(flags, base) if mode == "cli" else adapter(flags, base)
    json.dump(result, out, default=repr, sort_keys=True)


if __name__ == "__main__":
    main()
