"""Checks made in before.sh, before anything starts: can this launch work?

A launch that cannot work ends here, within seconds, with one ERROR line.
What it finds is kept in mlflow_session.json for the session card.
"""

from __future__ import annotations

import json
import os

from . import settings
from .errors import LaunchError, report
from .mlflow_env import mlflow_version
from .store_checks import check_store
from .store_uri import parse_store


def main() -> int:
    conf = settings.load()
    try:
        store = check_store(parse_store(conf.tracking_uri, settings.home()))
        version = mlflow_version(conf.environment)
    except LaunchError as error:
        report(error)
        return 1
    info = {
        "mlflow_version": version,
        "store_kind": store.kind,
        "store_path": store.path,
        "tracking_uri": store.tracking_uri,
        "environment": conf.environment,
    }
    path = settings.SESSION_DIR / settings.INFO_FILE_NAME
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
    kind = "SQLite database" if store.kind == "sqlite" else "directory store"
    print(f"MLflow {version} will open the {kind} {store.path}", flush=True)
    return 0
