"""A real conversion with MLflow 3.17's migrate-filestore reports its progress while the tool runs."""

import json
import subprocess

import pytest

from devportal.ood import APP_ROOT
from devportal.testbed import mlflow_python

pytestmark = pytest.mark.launch  # needs the MLflow venvs

CONVERT = """
import json, sys
sys.path.insert(0, sys.argv[3])
from ood_mlflow import filestore_conversion
seen = []
filestore_conversion.convert(sys.argv[1], sys.argv[2], lambda *state: seen.append(state))
print(json.dumps(seen))
"""


def test_progress_is_reported_while_the_tool_converts(tmp_path):
    store, target = tmp_path / "mlruns", tmp_path / "mlruns.db"
    python = str(mlflow_python("3"))
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_TRACKING_URI": str(store), "PATH": "/usr/bin:/bin"}
    subprocess.run([python, str(APP_ROOT / "demo/make_store.py"), str(store), "--runs", "300", "--steps", "30"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    done = subprocess.run([python, "-c", CONVERT, str(store), str(target), str(APP_ROOT / "template")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    stages = [stage for stage, _, _ in seen]
    assert stages[0] == "counting" and stages[-1] == "checking"
    converting = [(n, total) for stage, n, total in seen if stage == "converting"]
    assert converting, f"no progress while the tool ran: {stages}"
    assert all(0 <= n <= total == 300 for n, total in converting)
    assert any(n < total for n, total in converting), f"progress only at the end: {converting}"
    assert target.exists()
