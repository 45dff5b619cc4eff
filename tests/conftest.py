"""Fixtures shared by the whole suite: MLflow environments, site configurations,
test users, stores made by real MLflow, and jobs that are always cleaned up."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.portal.jobs import LocalJob, SlurmJob
from tests.portal.ood import APP_ROOT, stage

VENVS = Path(os.environ.get("OOD_MLFLOW_VENVS", "/opt/ood-mlflow"))
MLFLOW_VENVS = {"3": VENVS / "venv-mlflow3", "2": VENVS / "venv-mlflow2"}
OWNER = "ood-alice"  # the user who launches sessions
OTHER = "ood-bob"  # another user of the same cluster
STORES_ROOT = Path(os.environ.get("OOD_MLFLOW_TEST_STORES", "/srv/ood-mlflow-tests"))


def mlflow_python(major: str) -> Path:
    python = MLFLOW_VENVS[major] / "bin" / "python"
    assert python.exists(), f"MLflow {major}.x venv missing at {python}: run .ci/install-deps.sh"
    return python


@pytest.fixture(scope="session")
def users():
    subprocess.run([str(APP_ROOT / "tests/portal/services/create-users.sh"), OWNER, OTHER],
                   check=True, capture_output=True, timeout=60)
    return OWNER, OTHER


def write_site_config(path: Path, major: str = "3", **overrides) -> dict:
    """A site.yml whose environment activates the test venv of MLflow `major`; returns the dashboard env."""
    config = {
        "environments": [{"label": f"MLflow {major}.x (test venv)",
                          "setup": f"source {MLFLOW_VENVS[major]}/bin/activate\n"}],
        "proxy": "rnode",
        "start_timeout": 120,
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return {"MLFLOW_OOD_CONFIG": str(path)}


@pytest.fixture
def site_config(tmp_path):
    def make(major: str = "3", **overrides) -> dict:
        return write_site_config(tmp_path / f"site-{major}-{len(list(tmp_path.glob('site-*')))}.yml", major, **overrides)
    return make


def make_store(kind: str, major: str, owner: str, name: str = "") -> str:
    """A store written by real MLflow `major`, owned by `owner`; returns what the user types."""
    directory = STORES_ROOT / f"mlflow{major}-{kind}{name}"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    target = f"sqlite:///{directory}/mlruns.db" if kind == "sqlite" else str(directory / "mlruns")
    made = subprocess.run([str(mlflow_python(major)), str(APP_ROOT / "demo/make_store.py"), target],
                          capture_output=True, text=True, cwd=directory, timeout=300)
    assert made.returncode == 0, f"making the {kind} store with MLflow {major} failed:\n{made.stderr[-2000:]}"
    entry = pwd.getpwnam(owner)
    for dirpath, dirnames, filenames in os.walk(directory):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name_ in filenames:
            os.chown(os.path.join(dirpath, name_), entry.pw_uid, entry.pw_gid)
    STORES_ROOT.chmod(0o755)
    directory.chmod(0o700)  # like a project directory: only its owner reads it
    return f"{directory}/mlruns.db" if kind == "sqlite" else target


@pytest.fixture(scope="session")
def stores(users):
    """Stores per (kind, MLflow major), made once per test run."""
    made = {}

    def get(kind: str, major: str = "3") -> str:
        if (kind, major) not in made:
            made[(kind, major)] = make_store(kind, major, OWNER)
        return made[(kind, major)]
    return get


@pytest.fixture
def launch(users, tmp_path):
    """launch(values, env, runner="local"|"slurm") stages a session as OWNER and starts its job.

    Every job is cancelled, and its processes killed, when the test ends."""
    jobs = []

    def start(values: dict, env: dict, runner: str = "local", user: str = OWNER):
        session = stage(values, user=user, env=env)
        job = (SlurmJob if runner == "slurm" else LocalJob)(session).start()
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.cancel()
