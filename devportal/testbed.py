"""The test bed shared by the tests and bin/launch-local: MLflow venvs, users,
site configurations and stores written by real MLflow."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import threading
from pathlib import Path

import yaml

from devportal.ood import APP_ROOT, chown_tree

VENVS = Path(os.environ.get("OOD_MLFLOW_VENVS", "/opt/ood-mlflow"))
MLFLOW_VENVS = {"3": VENVS / "venv-mlflow3", "2": VENVS / "venv-mlflow2"}
OWNER = "ood-alice"  # the user who launches sessions
OTHER = "ood-bob"  # another user of the same cluster
STORES_ROOT = Path(os.environ.get("OOD_MLFLOW_TEST_STORES", "/srv/ood-mlflow-tests"))


# One service script at a time in this process: a test module's start_early thread and pytest's own fixtures may
# both find a service missing (two start-slurm.sh at once race on slurm.conf.new).
_SERVICES_LOCK = threading.Lock()


def run_service(script: str, *args: str, timeout: int = 180) -> None:
    """Run a devportal/services script (idempotent: a running service is found, not restarted)."""
    with _SERVICES_LOCK:
        done = subprocess.run([str(APP_ROOT / "devportal/services" / script), *args], capture_output=True,
                              text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}{done.stderr}"


class Background:
    """Work a test module starts early (its start_early) in a thread; result() waits for it and raises what it
    raised, in the test that needs it."""

    def __init__(self, name: str, work):
        self._outcome = {}

        def run():
            try:
                self._outcome["value"] = work()
            except BaseException as error:
                self._outcome["error"] = error
        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 600):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self._thread.name} was not done within {timeout:.0f} s"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def start_services(*scripts: str) -> None:
    """The scripts, each with the arguments the test bed uses; for work that starts outside pytest's fixtures
    (a test module's start_early)."""
    arguments = {"create-users.sh": (OWNER, OTHER), "start-postgres.sh": (OWNER,)}
    for script in scripts:
        run_service(script, *arguments.get(script, ()))


def mlflow_python(major: str) -> Path:
    python = MLFLOW_VENVS[major] / "bin" / "python"
    assert python.exists(), f"MLflow {major}.x venv missing at {python}: run .ci/install-deps.sh"
    return python


# In an environment's setup: serve through the `mlflow server` CLI, the path an unproven MLflow gets.
FORCE_CLI_SETUP = "export OOD_MLFLOW_SERVER=cli\n"


def write_site_config(path: Path, major: str = "3", extra_setup: str = "", **overrides) -> dict:
    """A site.yml whose environment activates the test venv of MLflow `major` (then runs `extra_setup`);
    returns the dashboard env."""
    config = {
        "environments": [{"label": f"MLflow {major}.x (test venv)",
                          "setup": f"source {MLFLOW_VENVS[major]}/bin/activate\n{extra_setup}"}],
        "proxy": "rnode",
        "start_timeout": 120,
        "examples": {"project": "project_2001234", "store": "/scratch/project_2001234/mlruns"},  # the model site
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return {"MLFLOW_OOD_CONFIG": str(path)}


def make_store(kind: str, major: str, owner: str, name: str = "") -> str:
    """A store written by real MLflow `major`, owned by `owner`; returns what the user types."""
    directory = STORES_ROOT / f"mlflow{major}-{kind}{name}"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    target = f"sqlite:///{directory}/mlruns.db" if kind == "sqlite" else str(directory / "mlruns")
    write_demo_store(major, target, directory, owner)
    return f"{directory}/mlruns.db" if kind == "sqlite" else target


def write_demo_store(major: str, target: str, directory: Path, owner: str, *options: str, env=None) -> None:
    """demo/make_store.py run with MLflow `major` on `target` (from `directory`, which then, like a project
    directory, only `owner` reads)."""
    made = subprocess.run([str(mlflow_python(major)), str(APP_ROOT / "demo/make_store.py"), target, *options],
                          capture_output=True, text=True, cwd=directory, env=env, timeout=300)
    assert made.returncode == 0, f"making the store {target} with MLflow {major} failed:\n{made.stderr[-2000:]}"
    STORES_ROOT.chmod(0o755)
    own_tree(directory, owner)


# What a researcher's directory store holds beyond demo/make_store.py: a registered model, a
# deleted run (the last one), an experiment tag, and a deleted experiment with a run of its own.
ADD_REGISTRY_AND_DELETIONS = """
import sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
experiment = client.get_experiment_by_name("demo-classifier")
runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
client.set_experiment_tag(experiment.experiment_id, "team", "vision")
client.create_registered_model("demo-model")
client.create_model_version("demo-model", runs[0].info.artifact_uri + "/model", run_id=runs[0].info.run_id)
client.delete_run(runs[-1].info.run_id)
abandoned = client.create_experiment("abandoned")
run = client.create_run(abandoned, run_name="abandoned-run")
client.log_metric(run.info.run_id, "loss", 1.0, step=0)
client.delete_experiment(abandoned)
"""


def add_registry_and_deletions(store: str, major: str, cwd) -> None:
    """Run ADD_REGISTRY_AND_DELETIONS on a directory store with MLflow `major`.

    The tracking URI is set, or MLflow 3's client would make an sqlite:///mlflow.db in `cwd`."""
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_TRACKING_URI=str(store))
    done = subprocess.run([str(mlflow_python(major)), "-c", ADD_REGISTRY_AND_DELETIONS, str(store)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def tree_digest(directory) -> dict:
    """sha256 of every file below `directory` by relative path, and every directory (as "dir"):
    a store's bytes and shape, compared before and after."""
    digests = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames:
            digests[os.path.relpath(os.path.join(dirpath, name), directory) + "/"] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(fh.read()).hexdigest()
    return digests


def own_tree(top, owner: str, mode: int = 0o700) -> None:
    """Give `top` and everything in it to `owner`; `top` itself gets `mode`."""
    chown_tree(top, owner)
    os.chmod(top, mode)


def share_with(top, user: str) -> None:
    """Make `top` a project folder `user` can write in too, as a shared store's is: every folder in it gets
    `user`'s group and group write (the files keep their owner's)."""
    gid = pwd.getpwnam(user).pw_gid
    for dirpath, _, _ in os.walk(top):
        os.chown(dirpath, -1, gid)
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o070)


def as_user(user: str, *argv: str) -> None:
    """Run `argv` as `user` (a project member at work in a shared folder)."""
    done = subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{argv} as {user} failed: {done.stderr}"


MODULE_ROOT = Path("/etc/lmod/modules")  # on Debian's Lmod MODULEPATH, as a site's modules are


def install_modulefiles() -> dict:
    """Lmod modulefiles mlflow/3.17 and mlflow/2.22 that point at the test venvs; returns {name: venv}."""
    installed = {}
    for major, name in (("3", "mlflow/3.17"), ("2", "mlflow/2.22")):
        target = MODULE_ROOT / f"{name}.lua"
        target.parent.mkdir(parents=True, exist_ok=True)
        venv = MLFLOW_VENVS[major]
        target.write_text(f'whatis("MLflow {major}.x for the ood-mlflow tests")\n'
                          f'prepend_path("PATH", "{venv}/bin")\nsetenv("VIRTUAL_ENV", "{venv}")\n')
        target.chmod(0o644)
        installed[name] = venv
    return installed
