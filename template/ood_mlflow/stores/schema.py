"""Does an SQLite store's schema match the chosen MLflow's?

A newer MLflow opening an older SQLite store migrates it in place, without a
backup, and the training jobs still on the older MLflow then fail to write to
it (MLflow's `mlflow db upgrade` documentation). So the app compares first, and
opens a store of another schema only when the user chose how on the form.
The chosen MLflow's migrations are read with alembic, which MLflow uses for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass

from ..session import write_json

SAME, OLDER, NEWER, NOT_MLFLOW = "same", "older", "newer", "not-mlflow"


@dataclass(frozen=True)
class Migrations:
    heads: frozenset  # the revision(s) this MLflow creates and expects
    known: frozenset  # every revision this MLflow knows, heads included


def mlflow_migrations() -> Migrations:
    """The chosen MLflow's migrations, cached per installation.

    Loading them runs every migration script (2-3 s of imports); an installed
    MLflow's migrations only change when its files do, which the cache key sees.
    """
    package = os.path.dirname(importlib.util.find_spec("mlflow").origin)
    location = os.path.join(package, "store", "db_migrations")
    versions = os.path.join(location, "versions")
    stat = os.stat(versions)
    key = f"{os.path.realpath(versions)}|{stat.st_mtime_ns}|{len(os.listdir(versions))}"
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ood-mlflow",
                         "migrations-" + hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")
    try:
        with open(cache, encoding="utf-8") as fh:
            data = json.load(fh)
        return Migrations(frozenset(data["heads"]), frozenset(data["known"]))
    except (OSError, ValueError, KeyError):
        pass
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(location)
    found = Migrations(frozenset(scripts.get_heads()), frozenset(r.revision for r in scripts.walk_revisions()))
    _write_cache(cache, {"key": key, "heads": sorted(found.heads), "known": sorted(found.known)})
    return found


def _write_cache(path: str, data: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_json(path, data)
    except OSError:
        pass  # a read-only home only costs the next launch those seconds again


def compare(store_revisions: set, migrations: Migrations) -> str:
    """SAME, OLDER (this MLflow would migrate it), NEWER (written by a later MLflow) or NOT_MLFLOW."""
    if not store_revisions:
        return NOT_MLFLOW
    if set(store_revisions) == set(migrations.heads):
        return SAME
    if set(store_revisions) <= migrations.known:
        return OLDER
    return NEWER
