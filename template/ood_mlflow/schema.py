"""Does an SQLite store's schema match the chosen MLflow's?

A newer MLflow opening an older SQLite store migrates it in place, without a
backup, and the training jobs still on the older MLflow then fail to write to
it (../shared/reference/mlflow-server.md §6). So the app compares first, and
opens a store of another schema only when the user chose how on the form.
The chosen MLflow's migrations are read with alembic, which MLflow uses for them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

SAME, OLDER, NEWER, NOT_MLFLOW = "same", "older", "newer", "not-mlflow"


@dataclass(frozen=True)
class Migrations:
    heads: frozenset  # the revision(s) this MLflow creates and expects
    known: frozenset  # every revision this MLflow knows, heads included


def mlflow_migrations() -> Migrations:
    from alembic.script import ScriptDirectory

    package = os.path.dirname(importlib.util.find_spec("mlflow").origin)
    scripts = ScriptDirectory(os.path.join(package, "store", "db_migrations"))
    return Migrations(frozenset(scripts.get_heads()), frozenset(r.revision for r in scripts.walk_revisions()))


def compare(store_revisions: set, migrations: Migrations) -> str:
    """SAME, OLDER (this MLflow would migrate it), NEWER (written by a later MLflow) or NOT_MLFLOW."""
    if not store_revisions:
        return NOT_MLFLOW
    if set(store_revisions) == set(migrations.heads):
        return SAME
    if set(store_revisions) <= migrations.known:
        return OLDER
    return NEWER
