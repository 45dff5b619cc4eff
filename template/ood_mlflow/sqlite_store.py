"""Looking at an SQLite store without changing it, and copying it safely.

The store is opened with SQLite's read-only URI mode (`mode=ro`), so nothing
here can write to it, create a journal beside it or change its journal mode.
Copies go through SQLite's online backup API, which gives a consistent copy
even while a training job writes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from urllib.parse import quote

from .errors import LaunchError

LOCK_WAIT_SECONDS = 10


def read_only_uri(path: str) -> str:
    """An SQLite URI filename that opens `path` read-only."""
    return "file:" + quote(path, safe="/") + "?mode=ro"


def is_wal(path: str) -> bool:
    """True if the database is in WAL journal mode: bytes 18-19 of the header are 2."""
    with open(path, "rb") as fh:
        header = fh.read(20)
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def schema_revisions(path: str) -> set:
    """The alembic revisions the store records (empty for an SQLite file that is no MLflow store)."""
    try:
        with closing(sqlite3.connect(read_only_uri(path), uri=True, timeout=LOCK_WAIT_SECONDS)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "alembic_version" not in tables:
                return set()
            return {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None


def copy_database(source: str, target: str) -> None:
    """A consistent copy of `source` at `target` (mode 0600), reading the source read-only.

    In rollback-journal mode the copy is byte for byte, made while a read
    transaction keeps writers out; a WAL database (whose recent pages live in
    its -wal file) is copied page by page with SQLite's backup API.
    """
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        with closing(sqlite3.connect(read_only_uri(source), uri=True, timeout=LOCK_WAIT_SECONDS,
                                     isolation_level=None)) as src:
            if is_wal(source):
                with closing(sqlite3.connect(target)) as dst:
                    src.backup(dst)
            else:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchall()  # takes the shared lock
                shutil.copyfile(source, target)
                src.execute("COMMIT")
    except sqlite3.DatabaseError as error:
        os.unlink(target)
        raise _unreadable(source, error) from None


def _unreadable(path: str, error: Exception) -> LaunchError:
    text = str(error)
    if "locked" in text:
        return LaunchError(
            f"The SQLite store {path!r} stayed locked by another process for {LOCK_WAIT_SECONDS} s ({text})",
            "Relaunch when the training job writing to it has finished; on Lustre, check that the file "
            "system is mounted with flock",
        )
    return LaunchError(
        f"The SQLite store {path!r} cannot be read: {text}",
        "The file is damaged or not a complete SQLite database; restore it from a backup, "
        "or give the path of the intact store",
    )
