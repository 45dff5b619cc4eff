"""One walk of a directory store for the conversion's census and for reusing an earlier conversion, and which
earlier conversion may be served again: only this app's, made for this user, holding every run.

The stores are folders written here the way MLflow's FileStore lays them out; no MLflow is needed."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ood_mlflow.stores.census import directory_census
from ood_mlflow.stores.conversion import APPLICATION_ID, choose_target, directory_runs


def experiment(store: Path, name: str, meta: bool = True) -> Path:
    folder = store / name
    folder.mkdir(parents=True)
    if meta:
        (folder / "meta.yaml").write_text(f"experiment_id: '{name}'\nname: exp-{name}\nlifecycle_stage: active\n")
    return folder


def run(folder: Path, run_id: str) -> Path:
    path = folder / run_id
    for sub in ("params", "tags", "metrics"):
        (path / sub).mkdir(parents=True)
    (path / "meta.yaml").write_text(f"run_id: {run_id}\nrun_uuid: {run_id}\nlifecycle_stage: active\n")
    (path / "params" / "lr").write_text("0.1")
    (path / "metrics" / "loss").write_text("1 0.5 0\n2 0.4 1\n")
    return path


def earlier_conversion(path: Path, run_ids, marked: bool = True) -> Path:
    """An SQLite file with the tables a conversion's reuse test reads, holding `run_ids`."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE runs (run_uuid TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.executemany("INSERT INTO runs VALUES (?)", [(run_id,) for run_id in run_ids])
        db.execute("INSERT INTO alembic_version VALUES ('dc11669786a5')")
        if marked:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.commit()
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    """Experiment 1 with run a; experiment 2 is a link, inside the store, to a folder kept under .moved/."""
    store = tmp_path / "mlruns"
    run(experiment(store, "1"), "a")
    moved = experiment(store / ".moved", "2")
    run(moved, "b")
    (store / "2").symlink_to(".moved/2")
    return store


def test_the_census_and_the_reuse_test_walk_the_same_runs(store):
    # An experiment folder without meta.yaml is no experiment to the census (nor its runs).
    run(experiment(store, "3", meta=False), "c")
    run_ids, _ = directory_runs(str(store))
    assert run_ids == {"a", "b"}
    assert directory_census(str(store)).runs == len(run_ids)


def test_a_conversion_lacking_the_runs_of_a_linked_experiment_is_not_served_as_current(store):
    earlier = earlier_conversion(Path(f"{store}.db"), {"a"})
    target, reuse = choose_target(str(store), directory_runs(str(store))[0])
    assert (target, reuse) == (f"{store}-converted.db", False)
    assert earlier.exists()


def test_only_this_apps_mark_makes_a_conversion_with_every_run_reusable(store):
    unmarked = earlier_conversion(Path(f"{store}.db"), {"a", "b"}, marked=False)
    assert choose_target(str(store), directory_runs(str(store))[0]) == (f"{store}-converted.db", False)
    unmarked.unlink()
    earlier_conversion(Path(f"{store}.db"), {"a", "b"})
    assert choose_target(str(store), directory_runs(str(store))[0]) == (f"{store}.db", True)


def test_a_link_at_the_name_is_someone_elses_even_to_this_users_conversion(store, tmp_path):
    ours = earlier_conversion(tmp_path / "elsewhere.db", {"a", "b"})
    Path(f"{store}.db").symlink_to(ours)
    assert choose_target(str(store), directory_runs(str(store))[0]) == (f"{store}-converted.db", False)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_marked_conversion_owned_by_another_user_is_someone_elses(store):
    planted = earlier_conversion(Path(f"{store}.db"), {"a", "b"})
    os.chown(planted, 65534, -1)  # nobody: the mark is easy to forge, the owner is not
    assert choose_target(str(store), directory_runs(str(store))[0]) == (f"{store}-converted.db", False)
