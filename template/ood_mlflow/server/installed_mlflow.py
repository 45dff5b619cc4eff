"""What the MLflow in the chosen software environment offers: its version, whether it can serve and convert."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys

from ..errors import LaunchError


def mlflow_version(environment: str = "") -> str:
    """The installed MLflow's version, without importing it (that takes seconds)."""
    where = f" in the environment {environment!r}" if environment else ""
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if dist == "mlflow-skinny":
            raise LaunchError(
                f"Only mlflow-skinny {version} is installed{where} ({sys.executable}); it has no tracking server",
                "Choose an environment with the full 'mlflow' package, or install it there (pip install mlflow)",
            )
        if importlib.util.find_spec("flask") is None:
            raise LaunchError(
                f"MLflow {version} is installed{where} ({sys.executable}), but Flask, which its tracking server "
                f"needs, is missing",
                "Ask your site's administrators to repair this environment (pip install mlflow installs Flask)",
            )
        return version
    raise LaunchError(
        f"MLflow is not installed{where} ({sys.executable} cannot find the mlflow package)",
        "Choose another environment on the form, or ask your site's administrators to fix this one",
    )


def has_migrate_filestore() -> bool:
    """Does this MLflow ship `mlflow migrate-filestore` (mlflow/store/fs2db, MLflow 3.x)?"""
    return importlib.util.find_spec("mlflow.store.fs2db") is not None


@functools.lru_cache(maxsize=1)
def sqlalchemy_decodes_percent() -> bool:
    """SQLAlchemy 2.1+ percent-decodes the database part of a URL (see stores.uri.sqlite_url)."""
    try:
        return major_minor(importlib.metadata.version("sqlalchemy")) >= (2, 1)
    except importlib.metadata.PackageNotFoundError:
        return True


def major_minor(version: str) -> tuple:
    parts = (version.split(".") + ["0", "0"])[:2]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)
