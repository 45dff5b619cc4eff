"""Looking at an SQLite store without changing it, and copying it safely.

The store is opened with SQLite's read-only URI mode (`mode=ro`), so nothing
here can write to it, create a journal beside it or change its journal mode.
Copies are consistent even while a training job writes: byte for byte under
a read transaction, or through SQLite's online backup API for a WAL database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from contextlib import closing

from ..errors import LaunchError
from .uri import sqlite_uri_filename

# How long a read waits for a training job's write lock before the launch says the store stays locked.
LOCK_WAIT_SECONDS = 10


def connect_read_only(path: str, **options):
    """A connection, closed on leaving its `with`, that can only read the SQLite file `path`."""
    return closing(sqlite3.connect(sqlite_uri_filename(path, read_only=True), uri=True, timeout=LOCK_WAIT_SECONDS,
                                   **options))


def is_wal(path: str) -> bool:
    """True if the database is in WAL journal mode: bytes 18-19 of the header are 2."""
    with open(path, "rb") as fh:
        header = fh.read(20)
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def schema_revisions(path: str) -> set:
    """The alembic revisions the store records (empty for an SQLite file that is no MLflow store)."""
    try:
        with connect_read_only(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "alembic_version" not in tables:
                return set()
            return {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None


def copy_database(source: str, target: str) -> None:
    """A consistent copy of `source` at `target` (mode 0600), reading the source read-only.

    The target is created with O_EXCL and written only through that descriptor, never reopened by name: in a
    shared folder its name could be swapped meanwhile for a link to another of the user's files. In
    rollback-journal mode the copy is byte for byte, made while a read transaction keeps writers out; a WAL
    database (whose recent pages live in its -wal file) is copied page by page with SQLite's backup API into
    a private folder beside the target, whose bytes then go through the descriptor.
    """
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            _copy_into(source, fd, os.path.dirname(target) or ".")
        except BaseException:
            _remove_if_still(target, fd)
            raise
    except sqlite3.DatabaseError as error:
        raise _unreadable(source, error) from None
    finally:
        os.close(fd)


def _copy_into(source: str, fd: int, folder: str) -> None:
    with connect_read_only(source, isolation_level=None) as src:
        if is_wal(source):
            work = tempfile.mkdtemp(prefix=".ood-mlflow-copying-", dir=folder)  # 0700: no one else reaches it
            try:
                staged = os.path.join(work, "copy.db")
                with closing(sqlite3.connect(staged)) as dst:
                    src.backup(dst)
                _write_from(staged, fd)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchall()  # takes the shared lock
            _write_from(source, fd)
            src.execute("COMMIT")
    os.fsync(fd)


def _write_from(path: str, fd: int) -> None:
    with open(path, "rb") as fh, os.fdopen(fd, "wb", closefd=False) as out:
        shutil.copyfileobj(fh, out, 1 << 20)


def _remove_if_still(target: str, fd: int) -> None:
    """Remove a half-made copy, if its name still is that file (someone may have swapped it meanwhile)."""
    made = os.fstat(fd)
    try:
        found = os.lstat(target)
    except OSError:
        return
    if (found.st_dev, found.st_ino) == (made.st_dev, made.st_ino):
        os.unlink(target)


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
