"""The session's settings: what the form and the site configuration chose.

session.json is rendered by OOD from template/session.json.erb when the session
is staged. Form values travel to the job this way, as JSON, so none of them is
ever pasted into a shell script.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SESSION_DIR = Path(__file__).resolve().parent.parent
SECRET_FILE_NAME = ".gate-secret"
INFO_FILE_NAME = "mlflow_session.json"


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    environment: str = ""
    proxy: str = "rnode"  # which OOD reverse-proxy prefix the view uses
    start_timeout: int = 300
    access: str = "write"  # see store_plan.ACCESS_CHOICES
    hours: int = 0  # the session's time limit (bc_num_hours); 0 if unknown
    trusted_proxies: tuple = ()  # site: addresses/CIDRs of the portal's web nodes
    artifact_roots: tuple = ()  # site: more folders whose artifacts a session may serve

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        return cls(
            tracking_uri=str(data.get("tracking_uri", "")),
            environment=str(data.get("environment", "")),
            proxy="node" if data.get("proxy") == "node" else "rnode",
            start_timeout=max(10, int(data.get("start_timeout") or 300)),
            access=str(data.get("access") or "write"),
            hours=int(data["hours"]) if str(data.get("hours", "")).strip().isdigit() else 0,
            trusted_proxies=tuple(str(v) for v in data.get("trusted_proxies") or ()),
            artifact_roots=tuple(str(v) for v in data.get("artifact_roots") or ()),
        )


def load(session_dir: Path = SESSION_DIR) -> Settings:
    with open(session_dir / "session.json", encoding="utf-8") as fh:
        return Settings.from_dict(json.load(fh))


def load_plan(session_dir: Path = SESSION_DIR) -> dict:
    """What preflight decided (mlflow_session.json)."""
    with open(session_dir / INFO_FILE_NAME, encoding="utf-8") as fh:
        return json.load(fh)


def read_secret(session_dir: Path = SESSION_DIR) -> str:
    with open(session_dir / SECRET_FILE_NAME, encoding="ascii") as fh:
        return fh.read().strip()


def home() -> str:
    return os.environ.get("HOME", "")
