"""What the chosen software environment offers: which MLflow, and can it serve."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

from .errors import LaunchError


def mlflow_version(environment: str = "") -> str:
    """The installed MLflow's version, without importing it (that takes seconds)."""
    where = f" in the environment {environment!r}" if environment else ""
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if dist == "mlflow-skinny" or importlib.util.find_spec("flask") is None:
            raise LaunchError(
                f"Only mlflow-skinny {version} is installed{where} ({sys.executable}); it has no tracking server",
                "Choose an environment with the full 'mlflow' package, or install it there (pip install mlflow)",
            )
        return version
    raise LaunchError(
        f"MLflow is not installed{where} ({sys.executable} cannot find the mlflow package)",
        "Choose another environment on the form, or ask your site's administrators to fix this one",
    )


def major_minor(version: str) -> tuple:
    parts = (version.split(".") + ["0", "0"])[:2]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)
