"""The one-import server: the MLflow versions it is proven on, and what `mlflow server` hands its web server (pure).

`mlflow server` imports MLflow, sets up the stores, then starts a web server
(uvicorn on 3.x, gunicorn on 2.x) in a child process that imports MLflow a
second time, and hands it its settings in private environment variables
(mlflow/server/constants.py). A session can set those variables itself and
serve MLflow's web app in its own process: one import, one resident copy.

MLflow does not promise to keep that hand-over, so each range of MLflow
versions it is proven on has its own adapter here, and
tests/template/ood_mlflow/server/test_one_import.py compares every adapter with what
the real CLI sets for the same flags. Any other MLflow is served through the
`mlflow server` CLI (cli.py), as is a session whose environment
sets OOD_MLFLOW_SERVER=cli (a site's escape hatch, and how the tests force it).
in_process.py does what an adapter says.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cli import ServerFlags
from .installed_mlflow import major_minor

ONE_IMPORT = "one-import"
CLI = "cli"
FORCE_VARIABLE = "OOD_MLFLOW_SERVER"  # "cli": always the mlflow server CLI

# The private names MLflow's CLI and its web server share (mlflow/server/constants.py, handlers.py,
# environment_variables.py). They are spelled out, not imported: importing mlflow.server would
# build the app before they are set, and it reads them as it is built.
BACKEND = "_MLFLOW_SERVER_FILE_STORE"
REGISTRY = "_MLFLOW_SERVER_REGISTRY_STORE"
ARTIFACT_ROOT = "_MLFLOW_SERVER_ARTIFACT_ROOT"
ARTIFACT_DESTINATION = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
STATIC_PREFIX = "_MLFLOW_STATIC_PREFIX"
SGI_NAME = "_MLFLOW_SGI_NAME"
BOOT_ID = "_MLFLOW_SERVER_BOOT_ID"

DEFAULT_ARTIFACTS_DESTINATION = "./mlartifacts"  # the CLI's --artifacts-destination default (unused: no proxy)


@dataclass(frozen=True)
class Adapter:
    """How one range of MLflow versions hands the CLI's settings to its web server."""

    name: str
    versions: tuple  # the (major, minor) versions the test matrix proves
    server: str  # how this process serves the app: "uvicorn" (ASGI, as the CLI) or "werkzeug" (WSGI)
    cli_variables: tuple  # environment variables the CLI reads as settings: set in the job, they need the CLI
    # What this MLflow's request handlers take from mlflow.server.auth (the basic-auth app), which they import
    # on every call; where that app cannot be imported, auth_stand_in.py answers with these, auth off.
    auth_names: tuple = ()

    def environment(self, flags: ServerFlags, boot_id: str) -> dict:
        """The variables the CLI sets for its web server (in its own environment or the child's)."""
        env = {BACKEND: flags.backend_uri, REGISTRY: flags.registry_uri or flags.backend_uri,
               ARTIFACT_ROOT: flags.artifact_root, ARTIFACT_DESTINATION: DEFAULT_ARTIFACTS_DESTINATION}
        if flags.prefix:
            env[STATIC_PREFIX] = flags.prefix
        if self.server == "uvicorn":  # MLflow 3.x
            env.update({
                # cli.server(): the --x-frame-options default, and workspaces off unless asked for
                "MLFLOW_SERVER_X_FRAME_OPTIONS": "SAMEORIGIN",
                "MLFLOW_ENABLE_WORKSPACES": "false",
                # server._run_server(): the secrets cache defaults, a boot id, not a job executor, the server kind
                "MLFLOW_SERVER_SECRETS_CACHE_TTL": "60",
                "MLFLOW_SERVER_SECRETS_CACHE_MAX_SIZE": "1000",
                BOOT_ID: boot_id,
                "_MLFLOW_IN_JOB_EXECUTOR": "false",
                SGI_NAME: "uvicorn",
            })
        return env

    def setup_calls(self, flags: ServerFlags) -> list:
        """What the CLI calls before it starts the web server: [("module:function", args, kwargs)]."""
        stores = (flags.backend_uri, flags.registry_uri or flags.backend_uri, flags.artifact_root)
        if self.server != "uvicorn":
            return [("mlflow.server.handlers:initialize_backend_stores", stores, {})]
        return [
            ("mlflow.server.handlers:initialize_backend_stores", stores,
             {"workspace_store_uri": None, "read_replica_backend_store_uri": None}),
            ("mlflow.tracing.trace_rollup_service:validate_sql_trace_rollup_startup", (flags.backend_uri,), {}),
        ]

    def server_options(self, flags: ServerFlags, log_config: str = "") -> dict:
        """The web server's settings: uvicorn.run()'s keywords as `python -m uvicorn` passes them for the CLI's
        flags, or the gunicorn flags the CLI would give (bind, workers, app) for werkzeug's server.
        One worker: this process."""
        if self.server == "uvicorn":
            return {"app": flags.app, "factory": True, "host": flags.host, "port": flags.port, "workers": 1,
                    "log_config": log_config, "app_dir": "", "headers": []}  # the last two: uvicorn's CLI defaults
        return {"bind": f"{flags.host}:{flags.port}", "workers": 1, "app": flags.app + "()"}


_CLI_VARIABLES_2 = ("MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_ARTIFACTS_ONLY", "MLFLOW_BACKEND_STORE_URI",
                    "MLFLOW_DEFAULT_ARTIFACT_ROOT", "MLFLOW_EXPOSE_PROMETHEUS", "MLFLOW_GUNICORN_OPTS", "MLFLOW_HOST",
                    "MLFLOW_PORT", "MLFLOW_REGISTRY_STORE_URI", "MLFLOW_SERVE_ARTIFACTS", "MLFLOW_STATIC_PREFIX",
                    "MLFLOW_WORKERS")
MLFLOW_3 = Adapter("MLflow 3.17", ((3, 17),), "uvicorn", _CLI_VARIABLES_2 + (
    "MLFLOW_READ_REPLICA_BACKEND_STORE_URI", "MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
    "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE", "MLFLOW_SERVER_X_FRAME_OPTIONS", "MLFLOW_TRACE_ARCHIVAL_CONFIG",
    "MLFLOW_UVICORN_OPTS", "MLFLOW_WORKSPACE_STORE_URI", "MLFLOW_ENABLE_WORKSPACES"),
    # search_runs_impl (auth.auth_config, auth.filter_experiment_ids) and _get_graphql_auth_middleware.
    auth_names=("auth_config", "filter_experiment_ids", "get_graphql_authorization_middleware"))
MLFLOW_2 = Adapter("MLflow 2.22", ((2, 22),), "werkzeug", _CLI_VARIABLES_2)
ADAPTERS = (MLFLOW_2, MLFLOW_3)


def adapter_for(mlflow_version: str):
    """The adapter proven for this MLflow version, or None."""
    found = major_minor(mlflow_version)
    return next((adapter for adapter in ADAPTERS if found in adapter.versions), None)


def proven_versions() -> str:
    return ", ".join(".".join(map(str, v)) for a in ADAPTERS for v in a.versions)


@dataclass(frozen=True)
class Choice:
    path: str  # ONE_IMPORT or CLI
    adapter: Adapter | None
    reason: str  # for output.log and the card
    workers: int = 1  # web workers; on the one-import path, forked after the import (prefork.py)


def choose(mlflow_version: str, environ: dict, workers: int = 1) -> Choice:
    """One import for a proven MLflow; otherwise, or when the site asks for it, the CLI."""
    if environ.get(FORCE_VARIABLE, "").strip().lower() == CLI:
        return Choice(CLI, None, f"{FORCE_VARIABLE}=cli is set in the software environment")
    found = major_minor(mlflow_version)
    for adapter in ADAPTERS:
        if found not in adapter.versions:
            continue
        settings = [name for name in adapter.cli_variables if environ.get(name)]
        if settings:
            return Choice(CLI, None, f"the software environment sets {', '.join(settings)}, which the mlflow server "
                                     f"CLI reads")
        if workers > 1:
            return Choice(ONE_IMPORT, adapter, f"{adapter.name} is proven for it; {workers} web workers for the "
                                               f"cores asked for, forked after the one import", workers)
        return Choice(ONE_IMPORT, adapter, f"{adapter.name} is proven for it")
    return Choice(CLI, None, f"MLflow {mlflow_version} is not among the versions the one-import server is "
                             f"proven on ({proven_versions()})")
