"""check_store on real files in tmp_path: what is a store, what is not, and an SQLite file known by its header.

Unreadable stores are not tested here: the tests may run as root, whom no permission stops (the launch tests
cover them as the test users)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.stores.checks import check_store, nearest_existing_parent
from ood_mlflow.stores.kinds import DIRECTORY, SQLITE
from ood_mlflow.stores.uri import Store, parse_store


def sqlite_file(path):
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.commit()
    return path


def refusal(path) -> str:
    with pytest.raises(LaunchError) as error:
        check_store(parse_store(str(path)))
    return error.value.line


def test_a_directory_store_with_an_experiment_is_a_store(tmp_path):
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    assert check_store(parse_store(str(tmp_path / "mlruns"))) == Store(DIRECTORY, str(tmp_path / "mlruns"))


def test_a_directory_store_with_only_deleted_experiments_is_a_store(tmp_path):
    (tmp_path / "mlruns" / ".trash").mkdir(parents=True)
    assert check_store(parse_store(str(tmp_path / "mlruns"))).kind == DIRECTORY


def test_an_empty_folder_is_not_a_store(tmp_path):
    (tmp_path / "mlruns").mkdir()
    assert "holds no MLflow experiments (no <id>/meta.yaml inside)" in refusal(tmp_path / "mlruns")


def test_a_folder_of_other_things_is_not_a_store(tmp_path):
    (tmp_path / "project" / "src").mkdir(parents=True)
    (tmp_path / "project" / "README").write_text("not a store\n")
    assert "holds no MLflow experiments" in refusal(tmp_path / "project")


def test_a_missing_store_names_the_nearest_existing_folder(tmp_path):
    missing = tmp_path / "no" / "such" / "mlruns"
    line = refusal(missing)
    assert f"The tracking store '{missing}' does not exist (the nearest existing directory is '{tmp_path}')" in line
    assert nearest_existing_parent(str(missing)) == str(tmp_path)


def test_a_missing_sqlite_file_is_missing_too(tmp_path):
    assert "does not exist" in refusal(tmp_path / "mlruns.db")


def test_an_sqlite_file_is_an_sqlite_store(tmp_path):
    path = str(sqlite_file(tmp_path / "mlruns.db"))
    assert check_store(parse_store(path)) == Store(SQLITE, path)
    assert check_store(parse_store("sqlite:///" + path)) == Store(SQLITE, path)


def test_an_sqlite_file_without_its_suffix_is_known_by_its_header(tmp_path):
    path = str(sqlite_file(tmp_path / "mlruns"))
    assert parse_store(path).kind == DIRECTORY  # what its name says
    assert check_store(parse_store(path)) == Store(SQLITE, path)


def test_a_file_that_is_no_sqlite_database_is_not_a_store(tmp_path):
    (tmp_path / "notes.txt").write_text("SQLite format 2 is not the header\n")
    assert "is a file, but neither an MLflow directory store nor an SQLite database" in refusal(tmp_path / "notes.txt")


def test_a_db_file_that_is_no_sqlite_database_is_refused_by_its_header(tmp_path):
    (tmp_path / "mlruns.db").write_bytes(b"")  # what a mistyped `touch` leaves
    assert "is not an SQLite database (its first bytes are not SQLite's header)" in refusal(tmp_path / "mlruns.db")
    (tmp_path / "other.db").write_bytes(b"SQLite format 3")  # the header without its NUL
    assert "is not an SQLite database" in refusal(tmp_path / "other.db")


def test_a_folder_named_like_an_sqlite_file_is_refused(tmp_path):
    (tmp_path / "mlruns.db" / "0").mkdir(parents=True)
    (tmp_path / "mlruns.db" / "0" / "meta.yaml").write_text("name: Default\n")
    assert "is a directory, but its name says SQLite file" in refusal(tmp_path / "mlruns.db")


def test_a_link_to_a_store_is_checked_as_what_it_leads_to(tmp_path):
    real = sqlite_file(tmp_path / "real.db")
    (tmp_path / "link.db").symlink_to(real)
    assert check_store(parse_store(str(tmp_path / "link.db"))) == Store(SQLITE, str(tmp_path / "link.db"))


def test_a_link_to_nothing_is_named_with_where_it_points(tmp_path):
    """A store path that is a symbolic link whose target is gone (a moved project folder) ends with one ERROR
    line naming the link and its target, not a traceback."""
    (tmp_path / "mlruns").symlink_to(tmp_path / "moved" / "mlruns")
    line = refusal(tmp_path / "mlruns")
    assert line.startswith("ERROR: ") and "symbolic link" in line
    assert str(tmp_path / "moved" / "mlruns") in line
