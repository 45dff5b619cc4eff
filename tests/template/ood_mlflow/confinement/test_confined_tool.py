"""`mlflow db upgrade` runs confined by the kernel: with Upgrade, it may write only in the store's folder, so a link
planted there that leads elsewhere fails inside the tool, before MLflow starts.

The store is written by real MLflow 2.22 and upgraded by MLflow 3.17, as preflight does it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from devportal.ood import APP_ROOT
from devportal.testbed import mlflow_python
from ood_mlflow.confinement import landlock

pytestmark = [pytest.mark.launch,  # needs the MLflow venvs
              pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")]

# A project member replaces the store with a link to another of the owner's stores, after every check,
# as the tool starts.
UPGRADE = """
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[2])
from ood_mlflow import preflight
from ood_mlflow.errors import LaunchError
from ood_mlflow.plan import Plan
from ood_mlflow.stores.uri import SQLITE, Store
store, victim = sys.argv[1], sys.argv[3]
real_popen = subprocess.Popen

class Planting(real_popen):
    def __init__(self, argv, *args, **kwargs):
        if "upgrade" in argv:
            os.unlink(store)
            os.symlink(victim, store)
        super().__init__(argv, *args, **kwargs)

subprocess.Popen = Planting
plan = Plan("3.17.2", SQLITE, store, store, store, os.path.dirname(store))
try:
    print(json.dumps({"upgraded": preflight._backup_and_upgrade(plan, Store(SQLITE, store)).backup}))
except LaunchError as error:
    print(json.dumps({"error": error.line}))
"""


def old_store(path):
    path.parent.mkdir(parents=True)
    subprocess.run([str(mlflow_python("2")), str(APP_ROOT / "demo/make_store.py"), f"sqlite:///{path}"],
                   cwd=path.parent, check=True, capture_output=True, timeout=300)
    return path


def test_an_upgrade_through_a_link_planted_as_the_tool_starts_fails_inside_the_tool(tmp_path):
    store = old_store(tmp_path / "shared" / "mlruns.db")
    victim = tmp_path / "home" / "other-project.db"  # another of the owner's stores, outside the folder
    victim.parent.mkdir()
    shutil.copyfile(store, victim)
    before = victim.read_bytes()
    done = subprocess.run([str(mlflow_python("3")), "-c", UPGRADE, str(store), str(APP_ROOT / "template"),
                           str(victim)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" in result, "the upgrade wrote through the planted link"
    # The confined child opens the store before MLflow starts: the kernel refuses the link's target there, and
    # the launch ends at once (MLflow's own open would retry for ~100 s), naming the link and where it leads.
    assert "changed after it was checked" in result["error"], result["error"]
    assert f"is a link made by user root to {str(victim)!r}" in result["error"]
    assert "SQLAlchemy engine could not be created" not in done.stdout + done.stderr, "MLflow ran on the link"
    assert victim.read_bytes() == before
    assert [p.name for p in (tmp_path / "shared").iterdir() if p.name.startswith(".")] == [], "a work folder was left"
