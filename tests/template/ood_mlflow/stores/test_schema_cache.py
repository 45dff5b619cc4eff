"""The chosen MLflow's migrations, read with alembic once and then from a cache."""

import json
import subprocess

import pytest

from devportal.ood import APP_ROOT
from devportal.testbed import mlflow_python

pytestmark = pytest.mark.launch  # needs the MLflow venvs

PROBE = "from ood_mlflow.stores.schema import mlflow_migrations as m; r = m(); print(sorted(r.heads), len(r.known))"


def run_probe(cache_home):
    done = subprocess.run([str(mlflow_python("3")), "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(APP_ROOT / "template"), "XDG_CACHE_HOME": str(cache_home),
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_migrations_are_cached_and_a_broken_cache_is_rebuilt(tmp_path):
    first = run_probe(tmp_path)
    assert first.startswith("['dc11669786a5']")  # MLflow 3.17.2's head
    (cached,) = (tmp_path / "ood-mlflow").glob("migrations-*.json")
    assert json.loads(cached.read_text())["heads"] == ["dc11669786a5"]
    assert run_probe(tmp_path) == first
    cached.write_text("{not json")
    assert run_probe(tmp_path) == first
    assert json.loads(cached.read_text())["heads"] == ["dc11669786a5"]
