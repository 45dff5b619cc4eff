"""A real conversion with MLflow 3.17's migrate-filestore: progress while the tool runs, a private work folder,
the file's mode and mark set before it gets its name, and the tool confined by the kernel to read the store."""

import json
import os
import subprocess

import pytest

from devportal.ood import APP_ROOT
from devportal.testbed import mlflow_python
from ood_mlflow.confinement import landlock
from ood_mlflow.stores import conversion

pytestmark = pytest.mark.launch  # needs the MLflow venvs
SECRET = "the owner's private key"

CONVERT = """
import json, sys
sys.path.insert(0, sys.argv[3])
from ood_mlflow.stores import conversion
from ood_mlflow.confinement import landlock
seen = []
conversion.convert(sys.argv[1], sys.argv[2], lambda *state: seen.append(state))
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


# convert() with its two hand-overs watched, not replaced: the tool's start (where it is told to write) and
# the link that gives the file its name (the file's mode at that moment).
WATCHED = """
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[3])
from ood_mlflow.stores import conversion
from ood_mlflow.confinement import landlock
seen = {"tool": [], "links": []}
real_popen, real_link = subprocess.Popen, os.link

class Watched(real_popen):
    def __init__(self, argv, *args, **kwargs):
        if "migrate-filestore" in argv:
            folder = os.path.dirname(argv[argv.index("--target") + 1][len("sqlite:///"):])
            seen["tool"].append({"folder": folder, "mode": os.stat(folder).st_mode & 0o777})
        super().__init__(argv, *args, **kwargs)

def link(source, target, *args, **kwargs):
    seen["links"].append({"mode": os.stat(source).st_mode & 0o777, "target": target})
    return real_link(source, target, *args, **kwargs)

subprocess.Popen, os.link = Watched, link
conversion.convert(sys.argv[1], sys.argv[2], lambda *state: None)
print(json.dumps(seen))
"""


def small_store(tmp_path, mode: int):
    project = tmp_path / "project"
    project.mkdir()
    store = project / "mlruns"
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_TRACKING_URI": str(store), "PATH": "/usr/bin:/bin"}
    subprocess.run([str(mlflow_python("3")), str(APP_ROOT / "demo/make_store.py"), str(store), "--runs", "3"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    store.chmod(mode)
    return project, store, env


def test_the_tool_writes_in_a_private_folder_and_the_file_has_its_mode_and_mark_before_its_name(tmp_path):
    project, store, env = small_store(tmp_path, 0o770)  # a project store: the file gets rw for the group
    done = subprocess.run([str(mlflow_python("3")), "-c", WATCHED, str(store), str(project / "mlruns.db"),
                           str(APP_ROOT / "template")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    [tool] = seen["tool"]
    assert os.path.dirname(tool["folder"]) == str(project) and tool["mode"] == 0o700, tool
    assert not os.path.exists(tool["folder"]), "the private folder was left behind"
    assert seen["links"] == [{"mode": 0o660, "target": str(project / "mlruns.db")}]
    assert sorted(os.listdir(project)) == ["mlruns", "mlruns.db"]
    with open(project / "mlruns.db", "rb") as fh:
        assert int.from_bytes(fh.read(72)[68:72], "big") == conversion.APPLICATION_ID


# A project member swaps a param file for a link to the owner's key after every check, as the tool starts.
PLANTED_AT_START = """
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[3])
from ood_mlflow.stores import conversion
from ood_mlflow.confinement import landlock
from ood_mlflow.errors import LaunchError
param, secret = sys.argv[4:6]
real_popen = subprocess.Popen

class Planting(real_popen):
    def __init__(self, argv, *args, **kwargs):
        if "migrate-filestore" in argv:
            os.unlink(param)
            os.symlink(secret, param)
        super().__init__(argv, *args, **kwargs)

subprocess.Popen = Planting
try:
    conversion.convert(sys.argv[1], sys.argv[2], lambda *state: None)
    print(json.dumps({"converted": True}))
except LaunchError as error:
    print(json.dumps({"error": error.line}))
"""


@pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")
def test_a_link_planted_as_the_tool_starts_fails_inside_the_tool(tmp_path):
    project, store, env = small_store(tmp_path, 0o775)
    home = tmp_path / "home"
    home.mkdir()
    (home / "id_ed25519").write_text(SECRET)
    param = next(store.glob("*/*/params/lr"))
    done = subprocess.run([str(mlflow_python("3")), "-c", PLANTED_AT_START, str(store), str(project / "mlruns.db"),
                           str(APP_ROOT / "template"), str(param), str(home / "id_ed25519")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" in result, "the conversion read through the planted link"
    assert "migrate-filestore could not convert" in result["error"] and "Permission denied" in result["error"]
    assert sorted(os.listdir(project)) == ["mlruns"]
    assert not [path for path in project.rglob("*") if path.is_file() and not path.is_symlink()
                and SECRET.encode() in path.read_bytes()]
