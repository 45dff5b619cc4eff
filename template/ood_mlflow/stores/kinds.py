"""The kinds of tracking store, each described once (pure).

Each kind is one StoreKind in KINDS. The entry says what the form accepts for the kind, where it is checked
before MLflow opens it, what a read-only session means for it, which folder is the store itself (the gate's and
the kernel's rules let the server write there, or only read in a read-only session), where experiments made in
the UI keep their artifacts, what the MLflow server's environment needs for it, and how the card and messages
name it.

To add a kind, add one entry here, then its parser in uri.py (when it has a scheme or suffix of its own) and
its checks: in checks.py for a file or folder, or in a module of its own as postgres.py does for a database.
Steps that really differ by kind keep their own branch: preflight's plan for a database, which is never copied
or upgraded, and serve.py's list of the files libpq reads.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Callable

DIRECTORY, SQLITE, POSTGRESQL = "directory", "sqlite", "postgresql"
# MLflow 3.13+ serves a directory (FileStore) store only with this opt-in; an earlier MLflow ignores it.
FILE_STORE_OPT_IN = ("MLFLOW_ALLOW_FILE_STORE", "true")


@dataclass(frozen=True)
class StoreKind:
    name: str  # what Store.kind and Plan.store_kind hold
    label: str  # the launch line and the card: "MLflow 3.17.2 will open the SQLite database /p/mlruns.db"
    message_name: str  # how ERROR lines name it: "The SQLite store '/p/mlruns.db' ..."
    accepts: str  # what the form takes for it: the strings training code gives mlflow.set_tracking_uri
    suffixes: tuple  # the file-name endings that make a plain path this kind (uri.py parses the schemes)
    checked_by: str  # what looks at the store before MLflow opens it (MLflow would create a fresh one instead)
    read_only: str  # what keeps a read-only session from changing it
    tree: Callable[[str], str]  # the store's location -> the folder that is the store ("" for a database)
    artifact_root: Callable[[str], str]  # the store's location -> the default artifact root ("": preflight's)
    server_environment: tuple = ()  # ((name, value), ...) the MLflow server needs for this kind


KINDS = (
    StoreKind(
        DIRECTORY, "directory store", "directory store", suffixes=(),
        accepts="an absolute path (~/ for the home), or file:///path",
        checked_by="stores.checks: a folder you may read, with <id>/meta.yaml or .trash in it",
        read_only="the gate refuses every change and the kernel gives the folder read-only; a model registry "
                  "the store lacks is kept node-local",
        # MLflow's own client keeps a directory store's artifacts inside it.
        tree=lambda location: location, artifact_root=lambda location: location,
        server_environment=(FILE_STORE_OPT_IN,)),
    StoreKind(
        SQLITE, "SQLite database", "SQLite store", suffixes=(".db", ".sqlite", ".sqlite3"),
        accepts="an absolute path ending in one of the suffixes, or sqlite:////path (four slashes, no query)",
        checked_by="stores.checks (a file you may read, with SQLite's header), then stores.sqlite and "
                   "stores.schema (its schema revision against this MLflow's)",
        read_only="opened with SQLite's mode=ro, or served as a node-local copy when it is in WAL mode or older "
                  "than this MLflow's schema (the copy is upgraded); the kernel gives its folder read-only",
        # Its folder, not the file: SQLite keeps its journal beside the file.
        tree=lambda location: posixpath.dirname(location) or "/",
        artifact_root=lambda location: posixpath.join(posixpath.dirname(location), "mlartifacts")),
    StoreKind(
        POSTGRESQL, "PostgreSQL store", "PostgreSQL store", suffixes=(),
        accepts="postgresql[+psycopg|+psycopg2]://user@host[:port]/dbname[?ssl options], never a password "
                "(stores.postgres_uri), where the site allows PostgreSQL",
        checked_by="stores.postgres: a read-only connection reads its tables and schema revision",
        read_only="every transaction is read-only at the database server (default_transaction_read_only)",
        # A database has no folder: preflight gives it the user's ~/mlartifacts.
        tree=lambda location: "", artifact_root=lambda location: ""),
)
_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_of(name: str) -> StoreKind:
    """The entry for a Store.kind or Plan.store_kind (KeyError for a kind this app does not know)."""
    return _BY_NAME[name]


def kind_for_path(path: str) -> str:
    """The kind a plain path names: by its suffix (an SQLite file), else a directory."""
    return next((kind.name for kind in KINDS if kind.suffixes and path.lower().endswith(kind.suffixes)), DIRECTORY)

