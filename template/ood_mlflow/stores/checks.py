"""Check, before MLflow opens it, that a store exists, can be read and is a store.

Only reads. MLflow creates a fresh store wherever it is pointed, so without
these checks a mistyped path would give the user an empty UI and leave a new
`mlruns/0` or `mlruns.db` behind.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from ..errors import LaunchError
from .kinds import DIRECTORY, SQLITE
from .uri import Store

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_store(store: Store) -> Store:
    """Return the directory or SQLite store to open, or raise: a file whose name says directory but whose
    header says SQLite is opened as the SQLite store it is."""
    path = store.location
    _must_exist(path)
    mode = os.stat(path).st_mode
    if store.kind == DIRECTORY and stat.S_ISREG(mode):
        if not _is_sqlite(path):
            raise LaunchError(
                f"{path!r} is a file, but neither an MLflow directory store nor an SQLite database",
                "Give the directory your training code logs to (mlflow.set_tracking_uri), "
                "or the .db file for an SQLite store",
            )
        store = dataclasses.replace(store, kind=SQLITE)
    CHECKS[store.kind](path, mode)
    return store


def _must_exist(path: str) -> None:
    if os.path.islink(path):
        _must_reach_target(path)
    if os.path.lexists(path):
        return
    parent = nearest_existing_parent(path)
    if not os.access(parent, os.X_OK):
        raise LaunchError(
            f"You cannot reach the tracking store {path!r}: you have no permission to enter {parent!r}",
            "Ask the directory's owner for access (chmod g+x on each directory on the way), "
            "or choose a store you own",
        )
    raise LaunchError(
        f"The tracking store {path!r} does not exist (the nearest existing directory is {parent!r})",
        "Check the path for typos: it must be the same path your training code gives "
        "mlflow.set_tracking_uri, and the first logged run creates it",
    )


def _must_reach_target(link: str) -> None:
    """A link is the one path that exists but may not be stat'ed: its target went away (a moved folder), or it
    lies in a folder the user cannot enter."""
    try:
        os.stat(link)
    except FileNotFoundError:
        raise LaunchError(
            f"The tracking store {link!r} is a symbolic link to {os.readlink(link)!r}, which does not exist",
            "Give the path of the store itself, or ask the link's owner to point it at the store's new place",
        ) from None
    except OSError:
        target = os.path.join(os.path.dirname(link), os.readlink(link))
        raise LaunchError(
            f"You cannot reach the tracking store {link!r}: it is a symbolic link to {target!r}, and you have no "
            f"permission to enter {nearest_existing_parent(target)!r}",
            "Ask that directory's owner for access (chmod g+x on each directory on the way), or give the path of "
            "a store you can read",
        ) from None


def nearest_existing_parent(path: str) -> str:
    parent = os.path.dirname(path.rstrip("/")) or "/"
    while parent != "/" and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    # The deepest directory that exists and can be entered, or the one that stops us.
    for step in _ancestors(parent):
        if not os.access(step, os.X_OK):
            return step
    return parent


def _ancestors(path: str) -> list:
    """'/', '/a', '/a/b' for '/a/b'."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _check_directory_store(path: str, mode: int) -> None:
    if not stat.S_ISDIR(mode):
        raise LaunchError(
            f"{path!r} is neither a directory nor an SQLite file",
            "Give the directory or SQLite file your training code logs to",
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise LaunchError(
            f"You cannot read the directory {path!r}",
            "Ask the directory's owner to grant you read access (chmod g+rX), or choose a store you own",
        )
    if not _looks_like_directory_store(path):
        raise LaunchError(
            f"{path!r} holds no MLflow experiments (no <id>/meta.yaml inside)",
            "Give the directory your training code logs to; if it is an SQLite store, give the .db file",
        )


def _looks_like_directory_store(path: str) -> bool:
    try:
        entries = os.listdir(path)
    except OSError:
        return False
    for name in entries:
        if os.path.isfile(os.path.join(path, name, "meta.yaml")):
            return True
    return ".trash" in entries


def _check_sqlite_file(path: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise LaunchError(
            f"{path!r} is a directory, but its name says SQLite file",
            "Give the .db file inside it, or rename the path so it does not end in .db",
        )
    if not os.access(path, os.R_OK):
        raise LaunchError(
            f"You cannot read the SQLite file {path!r}",
            "Ask the file's owner to grant you read access (chmod g+r), or choose a store you own",
        )
    if not _is_sqlite(path):
        raise LaunchError(
            f"{path!r} is not an SQLite database (its first bytes are not SQLite's header)",
            "Give the .db file your training code logs to with sqlite:////path/to/file.db",
        )


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


# Each file-system kind's own check (a database is checked by connecting to it: postgres.inspect).
CHECKS = {DIRECTORY: _check_directory_store, SQLITE: _check_sqlite_file}
