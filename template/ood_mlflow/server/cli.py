"""The `mlflow server` command line and environment for a session (pure).

Everything MLflow should do is said through its own CLI flags and public
environment variables; the login gate is plugged in with `--app-name`. The
store's URI goes in MLFLOW_BACKEND_STORE_URI (the CLI's own environment variable
for --backend-store-uri), so it is not on a command line that every user of the
node sees in `ps`.
"""

from __future__ import annotations

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


def server_argv(backend_uri: str, artifact_root: str, port: int, prefix: str, cpus: int,
                registry_uri: str = "") -> list:
    """`prefix`: session.public_prefix(), "" behind /rnode; `backend_uri` goes in server_environment()."""
    argv = [
        "server",
        "--default-artifact-root", directory_url(artifact_root),
        "--no-serve-artifacts",
        "--host", HOST,
        "--port", str(port),
        "--workers", str(workers_for(cpus)),
        "--app-name", APP_NAME,
    ]
    if registry_uri:
        argv += ["--registry-store-uri", registry_uri]
    if prefix:
        argv += ["--static-prefix", prefix]
    return argv


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
