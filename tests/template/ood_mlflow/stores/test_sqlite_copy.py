"""Copies of an SQLite store (the backup before an upgrade, a read-only session's copy) are written only through
the descriptor that created them, so a name swapped right after its creation receives nothing.

The project member's swap is made at the exact moment that matters by a Python audit hook: the first file
event after the copy's O_EXCL creation renames the new file away and puts a link to another of the owner's
SQLite stores in its place."""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import closing

import pytest

from ood_mlflow.stores.sqlite import copy_database, is_wal

SWAPS = []  # the swap armed for the running test; audit hooks stay for the whole process


def _swap_after_creation(event, args):
    if not SWAPS or event not in ("open", "sqlite3.connect"):
        return
    swap = SWAPS[0]
    path = args[0] if args else None
    if swap["state"] == "waiting" and path == swap["target"]:
        swap["state"] = "created"  # the O_EXCL open is about to run: swap at the next file event
    elif swap["state"] == "created" and path != swap["target"]:
        swap["state"] = "swapped"
        os.rename(swap["target"], swap["target"] + ".moved")
        os.symlink(swap["victim"], swap["target"])


sys.addaudithook(_swap_after_creation)


def database(path, rows: int, wal: bool = False):
    with closing(sqlite3.connect(path)) as db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE runs (n INTEGER)")
        db.executemany("INSERT INTO runs VALUES (?)", [(n,) for n in range(rows)])
        db.commit()
    return path


def rows(path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_a_name_swapped_after_creation_receives_nothing(tmp_path, wal):
    source = database(tmp_path / "mlruns.db", 50, wal)
    victim = database(tmp_path / "other-project.db", 7)  # another store of the owner's, in the same folder
    before = victim.read_bytes()
    target = str(tmp_path / "mlruns.db.backup-20260101-000000")
    swap = {"state": "waiting", "target": target, "victim": str(victim)}
    SWAPS.append(swap)
    try:
        copy_database(str(source), target)
    finally:
        SWAPS.clear()
    assert swap["state"] == "swapped"
    assert victim.read_bytes() == before, "the copy was written through the planted link"
    assert os.path.islink(target)  # the member's link is left as it is
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".ood-mlflow-")], "a staging folder was left"
    # The copy went, whole, to the file its descriptor holds.
    assert oct(os.stat(target + ".moved").st_mode & 0o777) == "0o600" and is_wal(target + ".moved") == wal
    assert rows(target + ".moved") == 50
