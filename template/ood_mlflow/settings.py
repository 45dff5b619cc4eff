"""The session's settings: what the form and the site configuration chose, checked where they enter.

session.json is rendered by OOD from template/session.json.erb when the session
is staged. Form values travel to the job this way, as JSON, so none of them is
ever pasted into a shell script. Each value is checked here, once: a value the
app does not know ends the launch with an ERROR line, never a silent default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .confinement.rules import AUTO, MODES
from .errors import LaunchError
from .session import SESSION_DIR, SETTINGS_FILE
from .stores.access import ACCESS_CHOICES, WRITE
from .stores.uri import EXAMPLE_STORE

PROXIES = ("rnode", "node")
# site key default_view -> the value MLflow 3.x's UI keeps in localStorage (mlflow.workflowType_v1)
UI_VIEWS = {"training": "machine_learning", "genai": "genai"}


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    environment: str = ""
    proxy: str = "rnode"  # which OOD reverse-proxy prefix the view uses
    start_timeout: int = 300
    access: str = WRITE  # one of stores.access.ACCESS_CHOICES
    hours: int = 0  # the session's time limit (bc_num_hours); 0 if unknown
    trusted_proxies: tuple = ()  # site: addresses/CIDRs of the portal's web nodes
    artifact_roots: tuple = ()  # site: more folders whose artifacts a session may serve
    ui_view: str = "machine_learning"  # site: what MLflow 3.x's UI shows first (UI_VIEWS)
    example_store: str = EXAMPLE_STORE  # site: examples.store, shown in messages
    postgresql_allowed: bool = True  # site: postgresql.allowed
    confinement: str = AUTO  # site: confinement (confinement.MODES)
    node_local_hint: str = ""  # site: how a user asks for more node-local disk, e.g. "--gres=nvme:<GB>"
    slurm_runs: bool = True  # site: slurm_runs.enabled, the look-up of RUNNING runs whose Slurm job has ended
    close_slurm_runs: bool = False  # form: close those runs (a check box: "1" ticked)

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        access = str(data.get("access") or WRITE)
        if access not in ACCESS_CHOICES:
            raise LaunchError(f"The Store access {access!r} is not one this app knows "
                              f"({', '.join(ACCESS_CHOICES)})", "Choose Store access on the form again")
        proxy = str(data.get("proxy") or "rnode")
        if proxy not in PROXIES:
            raise LaunchError(f"The site's proxy setting {proxy!r} is neither rnode nor node",
                              "Ask your site's administrators to fix proxy in the app's site.yml")
        view = str(data.get("default_view") or "training")
        if view not in UI_VIEWS:
            raise LaunchError(f"The site's default_view {view!r} is neither training nor genai",
                              "Ask your site's administrators to fix default_view in the app's site.yml")
        confinement = str(data.get("confinement") or AUTO)
        if confinement not in MODES:
            raise LaunchError(f"The site's confinement setting {confinement!r} is neither auto nor required",
                              "Ask your site's administrators to fix confinement in the app's site.yml")
        return cls(
            confinement=confinement,
            node_local_hint=str(data.get("node_local_hint") or ""),
            slurm_runs=data.get("slurm_runs_enabled", True) is not False,
            close_slurm_runs=str(data.get("close_slurm_runs") or "0").strip() == "1",
            ui_view=UI_VIEWS[view],
            example_store=str(data.get("example_store") or EXAMPLE_STORE),
            postgresql_allowed=data.get("postgresql_allowed", True) is not False,
            tracking_uri=str(data.get("tracking_uri", "")),
            environment=str(data.get("environment", "")),
            proxy=proxy,
            start_timeout=max(10, int(data.get("start_timeout") or 300)),
            access=access,
            hours=int(data["hours"]) if str(data.get("hours", "")).strip().isdigit() else 0,
            trusted_proxies=tuple(str(v) for v in data.get("trusted_proxies") or ()),
            artifact_roots=tuple(str(v) for v in data.get("artifact_roots") or ()),
        )


def load(session_dir: Path = SESSION_DIR) -> Settings:
    with open(session_dir / SETTINGS_FILE, encoding="utf-8") as fh:
        return Settings.from_dict(json.load(fh))


def home() -> str:
    return os.environ.get("HOME", "")
