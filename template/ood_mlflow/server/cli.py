"""The `mlflow server` command line and environment for a session (pure).

Everything MLflow should do is said through its own CLI flags and public
environment variables; the login gate is plugged in with `--app-name`. The
store's URI goes in MLFLOW_BACKEND_STORE_URI (the CLI's own environment variable
for --backend-store-uri), so it is not on a command line that every user of the
node sees in `ps`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..stores.kinds import kind_of
from ..stores.uri import directory_url

APP_NAME = "ood-gate"
GATE_APP = "ood_mlflow.gate.app:create_app"  # what the ood-gate entry point names (ood_mlflow-*.dist-info)
HOST = "0.0.0.0"  # every address of the compute node: the portal's proxy connects from another host


def workers_for(cpus: int) -> int:
    """One worker per two cores, at most four: a UI for one person needs little.

    Each worker is a full MLflow import (~250 MB), and a 1-2 core session must
    not spend its memory on idle copies.
    """
    return max(1, min(4, cpus // 2))


@dataclass(frozen=True)
class ServerFlags:
    """What a session asks `mlflow server` for, said once: argv() gives it to the CLI, and the one-import
    server's adapter (adapters.py) hands the same values to MLflow's web app as the CLI would.

    backend_uri is not a flag: it travels in server_environment(), out of the command line `ps` shows."""

    backend_uri: str
    registry_uri: str  # "": the backend's, as the CLI defaults it
    artifact_root: str  # exactly as given to --default-artifact-root
    port: int
    prefix: str  # "" or the --static-prefix: session.public_prefix(), "" behind /rnode
    workers: int = 1  # the CLI's --workers (the one-import server forks its own, adapters.Choice.workers)
    host: str = HOST
    app: str = GATE_APP  # the `mlflow.app` entry point's value

    def argv(self) -> list:
        argv = [
            "server",
            "--default-artifact-root", self.artifact_root,
            "--no-serve-artifacts",
            "--host", self.host,
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--app-name", APP_NAME,
        ]
        if self.registry_uri:
            argv += ["--registry-store-uri", self.registry_uri]
        if self.prefix:
            argv += ["--static-prefix", self.prefix]
        return argv


def session_flags(backend_uri: str, artifact_root: str, port: int, prefix: str, cpus: int,
                  registry_uri: str = "") -> ServerFlags:
    """A session's flags: `artifact_root` a folder, `cpus` the cores the job has."""
    return ServerFlags(backend_uri, registry_uri, directory_url(artifact_root), port, prefix, workers_for(cpus))


def server_environment(store_kind: str, backend_uri: str = "") -> dict:
    env = {
        # A UI session needs no background job runner (8 more processes on 3.x).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # Compute nodes are offline; do not try to phone home.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # uvicorn would believe X-Forwarded-For from any local process and hide the real
        # peer from the gate, which checks it (trusted_proxies, local owner).
        "FORWARDED_ALLOW_IPS": "",
    }
    if backend_uri:
        env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
    env.update(kind_of(store_kind).server_environment)  # a directory store's opt-in (stores/kinds.py says why)
    return env
