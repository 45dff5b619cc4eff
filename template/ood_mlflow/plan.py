"""The Plan: what preflight decided, for serve, the gate, ready, the clean step and the session card.

preflight writes it to plan.json (session.PLAN_FILE); serve adds how it started
MLflow. It carries the session's Settings whole, so a site or form setting
reaches the gate under the name it has in site.yml or on the form.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .session import PLAN_FILE, SESSION_DIR, write_json
from .settings import Settings


@dataclass(frozen=True)
class Plan:
    mlflow_version: str
    store_kind: str  # stores.kinds.DIRECTORY, SQLITE or POSTGRESQL
    store_path: str  # the user's store (after a conversion: the SQLite file)
    tracking_uri: str  # for the user's training code
    backend_uri: str  # what mlflow server opens (the store, read-only, or a copy)
    artifact_root: str
    read_only: bool = False
    settings: Settings = field(default_factory=Settings)  # what the form and the site chose
    note: str = ""  # shown on the card: a copy, an upgrade and its backup, a conversion
    backup: str = ""
    registry_uri: str = ""  # "" lets MLflow keep the model registry in the store itself
    ends_at: int = 0  # epoch seconds when the session's time runs out (the login cookie's end)
    file_store_opt_in: bool = False  # training code needs MLFLOW_ALLOW_FILE_STORE=true (MLflow 3.13+)
    # Where the session answers (from the job and settings.proxy).
    port: int = 0
    prefix: str = ""  # session.public_prefix(): what MLflow serves under
    portal_path: str = ""  # session.portal_path(): where the browser finds the session (the login cookie's Path)
    # Folders the session made outside its own (a read-only copy, a temporary registry): writable by the server.
    scratch: tuple = field(default=())
    # RUNNING runs whose Slurm job has ended (slurm/sweep.py): "off" (site), "report" them, or "close" them (the
    # form's option, in a Read and write session).
    slurm_runs: str = "report"
    # How serve started MLflow (written by serve, for the card): server.adapters.ONE_IMPORT or CLI, and why;
    # and what protects the user's files (confinement.rules.status_line).
    server: str = ""
    server_reason: str = ""
    files: str = ""
    server_pid: int = 0  # the interpreter serve runs in (below any wrapper), for the clean step

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        found = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        found["scratch"] = tuple(found.get("scratch", ()))
        found["settings"] = Settings.from_dict(found.get("settings") or {})
        return cls(**found)


def write_plan(plan: Plan, session_dir: Path = SESSION_DIR) -> None:
    write_json(session_dir / PLAN_FILE, plan.to_dict())


def read_plan(session_dir: Path = SESSION_DIR) -> Plan:
    with open(session_dir / PLAN_FILE, encoding="utf-8") as fh:
        return Plan.from_dict(json.load(fh))
