"""Launches that cannot work end quickly, say why and what to do, and change nothing.

Each case is launched through the portal emulation as the session's owner; the
job must end within 60 seconds with exactly one `ERROR:` line that the
completed card shows, and every file of the stores involved must keep its
sha256.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from devportal.jobs import output_lines
from devportal.testbed import MLFLOW_VENVS, OTHER, OWNER, STORES_ROOT, make_store, own_tree, tree_digest

FAIL_WITHIN = 60


@pytest.fixture
def scratch(request, users):
    """A project directory of the session's owner for hand-made bad stores."""
    directory = STORES_ROOT / f"scratch-{abs(hash(request.node.nodeid)) % 10**8}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def fails_with(job, *words) -> str:
    seconds = job.wait_finished(timeout=FAIL_WITHIN + 30)
    output = job.session.output()
    errors = output_lines(job.session, "ERROR:")
    assert len(errors) == 1, f"expected one ERROR line, got {errors}:\n{output}"
    for word in words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    assert "Fix:" in errors[0]
    assert seconds < FAIL_WITHIN, f"the job took {seconds:.0f} s to give up"
    assert not job.session.connection_file.exists(), "a failed launch must never show Connect"
    assert errors[0].replace("'", "&#39;").replace('"', "&quot;")[:60] in job.session.render_completed()
    return errors[0]


def own(path: Path, owner=OWNER, mode=0o700):
    own_tree(path, owner, mode)


@pytest.mark.parametrize("typed,words", [
    ("{root}/nope/mlruns", ["does not exist", "nearest existing directory is '{root}'"]),
    ("mlruns", ["not an absolute path"]),
    ("sqlite:///mlruns.db", ["four slashes", "'sqlite:////scratch/project_2001234/mlruns.db'"]),
    ("postgres://db.example.org/mlflow", ["scheme 'postgres:'", "postgresql://"]),
    ("{root}/notes.txt", ["is a file, but neither an MLflow directory store nor an SQLite database"]),
    ("{root}/fake.db", ["is not an SQLite database"]),
    ("{root}/corrupt.db", ["cannot be read", "damaged"]),
    ("{root}/empty-dir", ["holds no MLflow experiments"]),
    ("{root}/other.db", ["not an MLflow store", "alembic_version"]),
])
def test_bad_store_values(launch, site_config, scratch, typed, words):
    (scratch / "notes.txt").write_text("not a store\n")
    (scratch / "fake.db").write_text("not a database\n")
    (scratch / "corrupt.db").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    (scratch / "empty-dir").mkdir()
    with sqlite3.connect(scratch / "other.db") as db:
        db.execute("CREATE TABLE t (x)")
    own(scratch)
    before = tree_digest(scratch)
    job = launch({"mlflow_tracking_uri": typed.format(root=scratch)}, site_config("3"))
    fails_with(job, *[w.format(root=scratch) for w in words])
    assert tree_digest(scratch) == before
    assert sorted(os.listdir(scratch)) == ["corrupt.db", "empty-dir", "fake.db", "notes.txt", "other.db"]
    assert not os.listdir(scratch / "empty-dir"), "MLflow created a store where none was"


def test_another_users_store_cannot_be_opened(launch, site_config, users):
    private = make_store("sqlite", "3", OTHER, name="-private")
    parent = Path(private).parent
    before = tree_digest(parent)
    fails_with(launch({"mlflow_tracking_uri": private}, site_config("3")),
               "You cannot reach", f"no permission to enter '{parent}'")
    parent.chmod(0o755)
    Path(private).chmod(0o600)
    fails_with(launch({"mlflow_tracking_uri": private}, site_config("3")), "You cannot read the SQLite file")
    assert tree_digest(parent) == before


def test_a_link_into_another_users_folder_names_the_folder(launch, site_config, scratch, users):
    private = make_store("sqlite", "3", OTHER, name="-private-linked")
    parent = Path(private).parent
    os.symlink(private, scratch / "mlruns.db")
    own(scratch)
    fails_with(launch({"mlflow_tracking_uri": str(scratch / "mlruns.db")}, site_config("3")),
               "is a symbolic link to", f"no permission to enter '{parent}'")


@pytest.mark.parametrize("setup,words", [
    ("module load mlflow/does-not-exist", ["Setting up the software environment", "failed"]),
    ("false", ["Setting up the software environment"]),
    ("export PATH=/usr/bin:/bin", ["MLflow is not installed", "/usr/bin/python3"]),
])
def test_broken_environments(launch, site_config, stores, setup, words):
    store = stores("sqlite")
    before = tree_digest(Path(store).parent)
    env = site_config("3", environments=[{"label": "Broken MLflow", "setup": setup}])
    fails_with(launch({"mlflow_tracking_uri": store}, env), *words)
    assert tree_digest(Path(store).parent) == before


def test_server_that_dies_while_starting(launch, site_config, stores, scratch):
    # An environment whose web server cannot even be imported: MLflow's CLI starts, its server dies.
    broken = scratch / "site-packages" / "uvicorn"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('this uvicorn is broken on purpose')\n")
    own(scratch, mode=0o755)
    setup = f"source {MLFLOW_VENVS['3']}/bin/activate\nexport PYTHONPATH={scratch}/site-packages\n"
    store = stores("sqlite")
    before = tree_digest(Path(store).parent)
    job = launch({"mlflow_tracking_uri": store},
                 site_config("3", environments=[{"label": "MLflow with a broken uvicorn", "setup": setup}]))
    fails_with(job, "The MLflow server stopped while starting", "RuntimeError: this uvicorn is broken on purpose")
    assert tree_digest(Path(store).parent) == before


@pytest.mark.parametrize("store_major,env_major,words", [
    ("2", "3", ["has schema revision", "MLflow 3.17.2 expects", "'Read-only'", "'Upgrade an older SQLite store'"]),
    ("3", "2", ["was written by a newer MLflow than 2.22"]),
])
def test_schema_mismatch_is_refused_by_default(launch, site_config, stores, store_major, env_major, words):
    store = stores("sqlite", store_major)
    before = tree_digest(Path(store).parent)
    fails_with(launch({"mlflow_tracking_uri": store}, site_config(env_major)), *words)
    assert tree_digest(Path(store).parent) == before, "the store changed although the launch was refused"
