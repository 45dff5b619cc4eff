"""The SQLite helpers on real databases made in tmp_path with the standard library's sqlite3: the journal mode
read from the header, the schema revisions read without writing, and copies made while a writer holds data
in its WAL file."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.stores import sqlite
from ood_mlflow.stores.sqlite import connect_read_only, copy_database, is_wal, schema_revisions


def database(path, rows: int = 3, wal: bool = False, revisions=()):
    with closing(sqlite3.connect(path)) as db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE runs (n INTEGER)")
        db.executemany("INSERT INTO runs VALUES (?)", [(n,) for n in range(rows)])
        if revisions:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            db.executemany("INSERT INTO alembic_version VALUES (?)", [(r,) for r in revisions])
        db.commit()
    return str(path)


def rows(path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


def folder(path) -> dict:
    """Every file beside `path`, with its bytes and modification time."""
    here = os.path.dirname(path)
    return {name: (open(os.path.join(here, name), "rb").read(), os.stat(os.path.join(here, name)).st_mtime_ns)
            for name in sorted(os.listdir(here))}


def test_the_journal_mode_is_read_from_the_header(tmp_path):
    assert is_wal(database(tmp_path / "rollback.db")) is False
    assert is_wal(database(tmp_path / "wal.db", wal=True)) is True
    (tmp_path / "short.db").write_bytes(b"SQLite format 3\x00\x10")  # a header cut short
    assert is_wal(str(tmp_path / "short.db")) is False


def test_the_schema_revisions_are_read_and_nothing_is_written(tmp_path):
    path = database(tmp_path / "mlruns.db", revisions=("1a2b3c4d5e6f",))
    before = folder(path)
    assert schema_revisions(path) == {"1a2b3c4d5e6f"}
    assert folder(path) == before, "reading the revisions changed or added a file"


def test_an_sqlite_file_without_alembic_has_no_revisions(tmp_path):
    assert schema_revisions(database(tmp_path / "other.db")) == set()


def test_two_heads_are_both_read(tmp_path):
    assert schema_revisions(database(tmp_path / "m.db", revisions=("aaa", "bbb"))) == {"aaa", "bbb"}


def test_the_read_only_connection_cannot_write(tmp_path):
    path = database(tmp_path / "mlruns.db")
    with connect_read_only(path) as db, pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("CREATE TABLE planted (x)")
    assert rows(path) == 3


def test_a_damaged_file_is_reported_as_unreadable(tmp_path):
    path = tmp_path / "mlruns.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(LaunchError, match="cannot be read: .*restore it from a backup"):
        schema_revisions(str(path))


def test_a_store_a_writer_keeps_locked_is_reported_as_locked(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "LOCK_WAIT_SECONDS", 0.1)  # the real wait is 10 s
    path = database(tmp_path / "mlruns.db", revisions=("abc",))
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(LaunchError, match=r"stayed locked by another process for 0.1 s"):
            schema_revisions(path)
        writer.execute("ROLLBACK")
    assert schema_revisions(path) == {"abc"}


def test_a_rollback_journal_database_is_copied_whole_and_private(tmp_path):
    source = database(tmp_path / "mlruns.db", rows=200)
    before = folder(source)
    copy = str(tmp_path / "copy.db")
    copy_database(source, copy)
    assert rows(copy) == 200 and open(copy, "rb").read() == before["mlruns.db"][0]
    assert oct(os.stat(copy).st_mode & 0o777) == "0o600"
    assert {k: v for k, v in folder(source).items() if k != "copy.db"} == before, "the source was changed"


def test_a_wal_database_is_copied_with_what_its_wal_file_holds(tmp_path):
    source = database(tmp_path / "mlruns.db", rows=5, wal=True)
    with closing(sqlite3.connect(source)) as writer:  # kept open: its rows stay in mlruns.db-wal
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.executemany("INSERT INTO runs VALUES (?)", [(n,) for n in range(100)])
        writer.commit()
        assert os.path.getsize(source + "-wal") > 0
        copy = str(tmp_path / "private" / "copy.db")
        os.mkdir(os.path.dirname(copy))
        copy_database(source, copy)
        assert os.listdir(tmp_path / "private") == ["copy.db"], "the staging folder was left"
        assert rows(copy) == 105 and is_wal(copy)


def test_a_copy_never_replaces_an_existing_file(tmp_path):
    source = database(tmp_path / "mlruns.db")
    (tmp_path / "taken.db").write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError):
        copy_database(source, str(tmp_path / "taken.db"))
    assert (tmp_path / "taken.db").read_bytes() == b"someone else's file"


def test_a_failed_copy_leaves_no_half_made_file(tmp_path):
    source = tmp_path / "mlruns.db"
    source.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(LaunchError, match="cannot be read"):
        copy_database(str(source), str(tmp_path / "copy.db"))
    assert not (tmp_path / "copy.db").exists()
