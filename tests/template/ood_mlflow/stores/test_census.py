"""The census that checks a directory store's conversion to SQLite by MLflow's migrate-filestore."""

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing

import pytest

from devportal.ood import APP_ROOT
from devportal.testbed import add_registry_and_deletions, mlflow_python
from ood_mlflow.stores import census
from ood_mlflow.stores.census import Census, differences, directory_census, sqlite_census

pytestmark = pytest.mark.launch  # needs the MLflow venvs


# 4 + 1 runs; 3 params a run; tags: mlflow.source.name and mlflow.runName on each demo run,
# mlflow.runName on the abandoned run, one experiment tag; 2 metrics x 20 steps a demo run + 1.
EXPECTED = Census(experiments=2, runs=5, params=12, tags=4 * 2 + 1 + 1, metric_points=4 * 2 * 20 + 1)


def run(args, cwd, store=None):
    # MLflow 3's client makes an sqlite:///mlflow.db in the working directory unless the
    # tracking URI is set, so the store is named and the working directory is a tmp one.
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", **({"MLFLOW_TRACKING_URI": str(store)} if store else {}))
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def migrate(source, target):
    run([mlflow_python("3"), "-m", "mlflow", "migrate-filestore", "--source", source,
         "--target", f"sqlite:///{target}", "--no-progress"], cwd=target.parent)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """converted(major) -> (directory store written by MLflow `major`, its SQLite conversion by MLflow 3.17)."""
    made = {}

    def get(major):
        if major not in made:
            root = tmp_path_factory.mktemp(f"mlflow{major}")
            store, database = root / "mlruns", root / "converted.db"
            python = mlflow_python(major)
            run([python, APP_ROOT / "demo/make_store.py", store, "--runs", "4"], cwd=root, store=store)
            add_registry_and_deletions(store, major, cwd=root)
            assert not (root / "mlflow.db").exists()
            migrate(store, database)
            made[major] = store, database
        return made[major]
    return get


@pytest.mark.parametrize("major", ["3", "2"])
def test_a_conversion_keeps_every_count(converted, major):
    store, database = converted(major)
    assert (store / ".trash").is_dir() and (store / "models" / "demo-model").is_dir()
    before = database.read_bytes()
    assert directory_census(str(store)) == EXPECTED
    assert sqlite_census(str(database)) == EXPECTED
    assert database.read_bytes() == before  # opened read-only


def test_progress_is_reported_while_counting(converted, monkeypatch):
    store, _ = converted("3")
    monkeypatch.setattr(census, "PROGRESS_EVERY", 2)
    calls = []
    directory_census(str(store), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_differences_name_each_count_that_differs():
    directory = Census(experiments=2, runs=10, params=30, tags=21, metric_points=400)
    assert differences(directory, directory) == []
    assert differences(directory, Census(experiments=2, runs=9, params=27, tags=21, metric_points=400)) == [
        "runs: 10 in the directory, 9 in the SQLite file",
        "params: 30 in the directory, 27 in the SQLite file",
    ]


def test_a_lost_metric_point_is_named(converted, tmp_path):
    store, database = converted("3")
    damaged = tmp_path / "damaged.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as source, \
            closing(sqlite3.connect(damaged)) as target:
        source.backup(target)
        target.execute("DELETE FROM metrics WHERE rowid = (SELECT min(rowid) FROM metrics)")
        target.commit()
    assert differences(directory_census(str(store)), sqlite_census(str(damaged))) == [
        f"metric_points: {EXPECTED.metric_points} in the directory, {EXPECTED.metric_points - 1} in the SQLite file",
    ]


def test_a_run_the_tool_skips_is_caught(converted, tmp_path):
    # migrate-filestore only logs a warning for a run whose meta.yaml it cannot parse, and exits 0.
    original, _ = converted("3")
    store = tmp_path / "mlruns"
    shutil.copytree(original, store)
    experiment = next(path for path in store.iterdir() if path.name.isdigit())
    broken = min(path for path in experiment.iterdir() if (path / "meta.yaml").is_file())
    (broken / "meta.yaml").write_text("run_id: [unclosed\n")
    migrate(store, tmp_path / "converted.db")
    lines = differences(directory_census(str(store)), sqlite_census(str(tmp_path / "converted.db")))
    assert [line.split(":")[0] for line in lines] == ["runs", "params", "tags", "metric_points"]
    assert lines[0] == "runs: 5 in the directory, 4 in the SQLite file"
