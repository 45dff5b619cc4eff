"""The session's contract: the files a session keeps and what every job step reads from them.

The job runs in three steps that share nothing but this module and pure
helpers (ood_mlflow.__main__ lists them):

  preflight  (before.sh)  reads the form and site values (settings.py, from
                          settings.json), checks the store and writes the Plan
                          (plan.py, plan.json);
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
from pathlib import Path

SESSION_DIR = Path(__file__).resolve().parent.parent  # the staged session directory
SETTINGS_FILE = "settings.json"  # form and site values, rendered by OOD from template/settings.json.erb
PLAN_FILE = "plan.json"  # the Plan (plan.py); info.html.erb reads it by this name
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


def write_json(path, data) -> None:
    """Write a JSON file whole or not at all: the card and the later steps may read it at any moment."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(temporary, path)


def read_secret(session_dir: Path = SESSION_DIR) -> str:
    with open(session_dir / SECRET_FILE, encoding="ascii") as fh:
        return fh.read().strip()
