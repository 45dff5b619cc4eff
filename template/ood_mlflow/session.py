"""The session's contract: the files a session keeps and what every job step reads from them.

The job runs in three steps that share nothing but this module and pure
helpers (ood_mlflow.__main__ lists them):

  preflight  (before.sh)  reads the form and site values (settings.py, from
                          session.json), checks the store and writes the Plan;
  serve      (script.sh)  starts MLflow, with the login gate (gate/app.py) in it,
                          as the Plan says;
  ready      (after.sh)   waits until the UI answers through the gate.

The Plan file is the one channel from preflight to the later steps and to the
session card (info.html.erb reads the same file, by the same name); serve adds
to it how it started MLflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

SESSION_DIR = Path(__file__).resolve().parent.parent  # the staged session directory
SETTINGS_FILE = "session.json"  # form and site values, rendered by OOD from template/session.json.erb
PLAN_FILE = "mlflow_session.json"  # the Plan; info.html.erb reads it by this name
SECRET_FILE = ".gate-secret"  # the session secret, mode 0600, written by before.sh
CONNECTION_FILE = "connection.yml"  # OOD's create_yml writes it (with the secret) once after.sh returns
PROGRESS_FILE = "conversion.json"  # a directory store's conversion progress, for the card
LOG_FILE = "output.log"  # where OOD sends the job's output
SERVER_DIR = "server"  # the server's working directory, the one folder of the session it may write
# The job's own ERROR and WARNING lines, for the card: output.log also holds whatever MLflow logs, and a planted
# meta.yaml can make MLflow log text that starts with "WARNING:" or "ERROR:".
MESSAGES_FILE = "job_messages"
# What the server found of RUNNING runs whose Slurm job has ended (slurm/sweep.py), in SERVER_DIR: for the card.
SLURM_RUNS_FILE = "slurm_runs.json"
EXIT_REASON_FILE = "job_exit_reason"  # why the job ended, one line: what OOD 4.x dashboards (CSC's) show

COOKIE_NAME = "ood_mlflow_session"  # the gate's login cookie
LOGIN_FIELD = "password"  # the form field the Connect button posts the secret in


def public_prefix(proxy: str, host: str, port: int) -> str:
    """The path prefix MLflow serves under: `/node` keeps the path, so MLflow must serve under it;
    `/rnode` strips it, so MLflow serves at the root."""
    return f"/node/{host}/{port}" if proxy == "node" else ""


def portal_path(proxy: str, host: str, port: int) -> str:
    """The session's path as the browser sees it on the portal (the Connect button's, view.html.erb's)."""
    return f"/{proxy}/{host}/{port}"


@dataclass(frozen=True)
class Plan:
    """What preflight decided, for serve, the gate, ready and the session card."""

    mlflow_version: str
    store_kind: str  # stores.uri.DIRECTORY, SQLITE or POSTGRESQL
    store_path: str  # the user's store (after a conversion: the SQLite file)
    tracking_uri: str  # for the user's training code
    backend_uri: str  # what mlflow server opens (the store, read-only, or a copy)
    artifact_root: str
    read_only: bool = False
    environment: str = ""
    note: str = ""  # shown on the card: a copy, an upgrade and its backup, a conversion
    backup: str = ""
    registry_uri: str = ""  # "" lets MLflow keep the model registry in the store itself
    ends_at: int = 0  # epoch seconds when the session's time runs out (the login cookie's end)
    file_store_opt_in: bool = False  # training code needs MLFLOW_ALLOW_FILE_STORE=true (MLflow 3.13+)
    # Where and how the session answers (from the job and the site configuration).
    port: int = 0
    prefix: str = ""  # public_prefix(): what MLflow serves under
    portal_path: str = ""  # portal_path(): where the browser finds the session (the login cookie's Path)
    start_timeout: int = 300
    trusted_proxies: tuple = field(default=())
    artifact_roots: tuple = field(default=())
    ui_view: str = "machine_learning"  # what MLflow 3.x's UI shows first (settings.UI_VIEWS)
    # Folders the session made outside its own (a read-only copy, a temporary registry): writable by the server.
    scratch: tuple = field(default=())
    confinement: str = "auto"  # site: confinement.AUTO or REQUIRED
    # RUNNING runs whose Slurm job has ended (slurm/sweep.py): "off" (site), "report" them, or "close" them (the
    # form's option, in a Read and write session).
    slurm_runs: str = "report"
    # How serve started MLflow (written by serve, for the card): one_import.ONE_IMPORT or CLI, and why;
    # and what protects the user's files (confinement.status_line).
    server: str = ""
    server_reason: str = ""
    files: str = ""
    server_pid: int = 0  # the interpreter serve runs in (below any wrapper), for the clean step

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        found = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in ("trusted_proxies", "artifact_roots", "scratch"):
            found[name] = tuple(found.get(name, ()))
        return cls(**found)


def write_plan(plan: Plan, session_dir: Path = SESSION_DIR) -> None:
    temporary = session_dir / f".{PLAN_FILE}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as fh:
        json.dump(plan.to_dict(), fh, indent=2)
    os.replace(temporary, session_dir / PLAN_FILE)


def read_plan(session_dir: Path = SESSION_DIR) -> Plan:
    with open(session_dir / PLAN_FILE, encoding="utf-8") as fh:
        return Plan.from_dict(json.load(fh))


def read_secret(session_dir: Path = SESSION_DIR) -> str:
    with open(session_dir / SECRET_FILE, encoding="ascii") as fh:
        return fh.read().strip()
