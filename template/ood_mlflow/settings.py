"""The session's settings: what the form and the site configuration chose, checked where they enter.

settings.json is rendered by OOD from template/settings.json.erb when the
session is staged. Form values travel to the job this way, as JSON, so none of
them is ever pasted into a shell script. Each setting has one name from end to
end: a form attribute mlflow_<name> (hours: OOD's bc_num_hours) or a site.yml
key (a nested one joined with "_": examples.store is examples_store) is the
JSON key and the field below, and the Plan carries this object to the gate.
Each value is checked here, once: a value the app does not know ends the
launch with an ERROR line, never a silent default.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .confinement.rules import AUTO, MODES
from .errors import LaunchError
from .gate.ui_view import STORED_VIEWS
from .session import SESSION_DIR, SETTINGS_FILE
from .stores.access import ACCESS_CHOICES, WRITE
from .stores.uri import EXAMPLE_STORE

PROXIES = ("rnode", "node")
DEFAULT_VIEWS = tuple(STORED_VIEWS)  # site default_view: training or genai


@dataclass(frozen=True)
class Settings:
    # From the form (form.yml.erb)
    tracking_uri: str = ""
    environment: str = ""  # the label of the chosen software environment (site.yml environments)
    store_access: str = WRITE  # one of stores.access.ACCESS_CHOICES
    close_slurm_runs: bool = False  # close RUNNING runs whose Slurm job has ended
    hours: int = 0  # the session's time limit; 0 if unknown
    # From site.yml (lib/site_config.rb JOB_SETTINGS)
    proxy: str = "rnode"  # which OOD reverse-proxy prefix the view uses
    start_timeout: int = 300
    trusted_proxies: tuple = ()  # addresses/CIDRs of the portal's web nodes
    artifact_roots: tuple = ()  # more folders whose artifacts a session may serve
    default_view: str = "training"  # what MLflow 3.x's UI shows first
    examples_store: str = EXAMPLE_STORE  # shown in messages
    postgresql_allowed: bool = True
    confinement: str = AUTO  # confinement.rules.MODES
    node_local_hint: str = ""  # how a user asks for more node-local disk, e.g. "--gres=nvme:<GB>"
    slurm_runs_enabled: bool = True  # the look-up of RUNNING runs whose Slurm job has ended

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        values = {}
        for field in dataclasses.fields(cls):
            given = data.get(field.name)
            values[field.name] = field.default if given is None or given == "" else _typed(field, given)
        for name, allowed in CHOICES.items():
            if values[name] not in allowed:
                raise _unknown(name, values[name], allowed)
        return cls(**dict(values, start_timeout=max(10, values["start_timeout"])))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The settings with a fixed vocabulary; a value outside it is refused.
CHOICES = {"store_access": ACCESS_CHOICES, "proxy": PROXIES, "default_view": DEFAULT_VIEWS, "confinement": MODES}


def _typed(field: dataclasses.Field, given):
    """A JSON value as the field's type: form values come as text ("1" for a ticked box), site values as YAML's."""
    kind = type(field.default)
    if kind is bool:
        return given is True or str(given).strip().lower() in ("1", "true")
    if kind is int:
        text = str(given).strip()
        return int(text) if text.isdigit() else field.default
    if kind is tuple:
        return tuple(str(v) for v in given)
    return str(given)


def _unknown(name: str, value: str, allowed: tuple) -> LaunchError:
    if name == "store_access":  # the one from the form
        return LaunchError(f"The Store access {value!r} is not one this app knows ({', '.join(allowed)})",
                           "Choose Store access on the form again")
    return LaunchError(f"The site's {name} setting {value!r} is not one of {', '.join(allowed)}",
                       f"Ask your site's administrators to fix {name} in the app's site.yml")


def load(session_dir: Path = SESSION_DIR) -> Settings:
    with open(session_dir / SETTINGS_FILE, encoding="utf-8") as fh:
        return Settings.from_dict(json.load(fh))


def home() -> str:
    return os.environ.get("HOME", "")
