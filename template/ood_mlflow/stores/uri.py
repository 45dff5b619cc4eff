"""Turn what a user typed into the form into one tracking store.

Pure functions only: nothing here touches the file system, so the rules can be
tested on their own. Checking that the store exists and can be read is
`stores.checks`' job.

Accepted forms (the same strings training code gives `mlflow.set_tracking_uri`):
  /scratch/p/mlruns             a directory store
  /scratch/p/mlruns.db          an SQLite file (.db, .sqlite, .sqlite3)
  ~/mlruns                      the user's home is expanded by the caller
  file:///scratch/p/mlruns      a directory store
  sqlite:////scratch/p/mlruns.db
  postgresql://user@host[:port]/dbname   a PostgreSQL database (postgres_uri.py)
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote, unquote

from ..errors import LaunchError
from .kinds import DIRECTORY, POSTGRESQL, SQLITE, kind_for_path, kind_of
from .postgres_uri import PostgresTarget, is_postgres, parse_postgres

# Characters a URL reader cuts at or decodes: SQLAlchemy cuts an SQLite path at `?`
# (2.1 also percent-decodes it), MLflow percent-decodes directory paths.
URL_SPECIAL = frozenset("?#%")
# SQLite's URI parameter that opens a file read-only: nothing can write it, create a journal beside it or
# change its journal mode.
SQLITE_READ_ONLY = "mode=ro"


def sqlite_uri_filename(path: str, read_only: bool = False) -> str:
    """An SQLite URI filename (`file:` with %-escapes) for exactly the file `path`, read-only if asked;
    sqlite3.connect needs uri=True for it."""
    return "file:" + quote(path, safe="/") + (f"?{SQLITE_READ_ONLY}" if read_only else "")


def sqlite_url(path: str, read_only: bool = False, decodes_percent: bool = True) -> str:
    """An SQLAlchemy URL that opens exactly the file `path`, byte for byte.

    A plain path is used as it is where nothing in it is special. Otherwise the
    path goes in as an SQLite URI filename (`file:` with %-escapes, `uri=true`),
    escaped once more for SQLAlchemy 2.1+, which percent-decodes the database
    part before SQLite sees it (`decodes_percent`)."""
    if not read_only and not URL_SPECIAL & set(path):
        return "sqlite:///" + path
    filename = sqlite_uri_filename(path)
    if decodes_percent:
        filename = quote(filename, safe="/:")
    return f"sqlite:///{filename}?{SQLITE_READ_ONLY + '&' if read_only else ''}uri=true"


def directory_url(path: str) -> str:
    """What MLflow opens as exactly the directory `path` (it percent-decodes plain paths)."""
    return "file://" + quote(path, safe="/") if URL_SPECIAL & set(path) else path


class StoreUriError(LaunchError):
    """A form value that cannot name a store."""


@dataclass(frozen=True)
class Store:
    """One tracking store: its kind (stores.kinds) and where it is.

    `location` is what the card shows and training code gives `mlflow.set_tracking_uri`: for a directory or an
    SQLite file its absolute, normalised path; for a PostgreSQL database its URI, never with a password
    (`database` then holds its parts)."""

    kind: str  # DIRECTORY, SQLITE or POSTGRESQL
    location: str
    database: Optional[PostgresTarget] = None  # POSTGRESQL only

    def backend_uri(self, decodes_percent: bool = True) -> str:
        """What `mlflow server --backend-store-uri` gets for a directory or SQLite store, and training code gives
        `mlflow.set_tracking_uri` (the same MLflow environment, the same SQLAlchemy). A database's URL depends
        on the driver the environment has: PostgresTarget.sqlalchemy_url."""
        if self.kind == SQLITE:
            return sqlite_url(self.location, decodes_percent=decodes_percent)
        return directory_url(self.location)

    @property
    def default_artifact_root(self) -> str:
        """Where experiments created in the UI keep artifacts: beside the store ("" for a database)."""
        return kind_of(self.kind).artifact_root(self.location)


EXAMPLE_STORE = "/path/to/my_project/mlruns"  # site.yml.example's examples.store; a site's replaces it


def parse_store(value: str, home: str = "", example: str = EXAMPLE_STORE) -> Store:
    """Return the store a form value names, or raise StoreUriError; `example` is the site's example store."""
    text = (value or "").strip()
    if not text:
        raise StoreUriError(
            "No tracking store was given",
            f"Enter the directory or SQLite file your training jobs log to, e.g. {example}",
        )
    if "\n" in text or "\r" in text or "\x00" in text:
        raise StoreUriError(
            "The tracking store contains a line break or NUL character",
            "Enter the path on one line",
        )
    if is_postgres(text):
        try:
            database = parse_postgres(text, example_user=posixpath.basename(home) or "my_user")
        except LaunchError as error:
            raise StoreUriError(error.cause, error.fix) from None
        return Store(POSTGRESQL, database.display, database)
    if "://" in text or text.startswith(("file:", "sqlite:")):
        return _parse_uri(text, example)
    path = _absolute(text, home, original=text, example=example)
    return Store(kind_for_path(path), path)


def _parse_uri(text: str, example: str) -> Store:
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _parse_sqlite(text, rest, example)
    if scheme == "file":
        return _parse_file(text, rest, example)
    if scheme == "postgres":  # what some tools print; SQLAlchemy and MLflow want the full name
        raise StoreUriError(f"The tracking store {text!r} uses the scheme 'postgres:', which SQLAlchemy does not read",
                            "Write it as postgresql://" + text.partition("://")[2])
    raise StoreUriError(
        f"The tracking store {text!r} uses the scheme '{scheme}:', which this app cannot open",
        "Give a directory path, an SQLite file path, a file:/// URI, a sqlite://// URI or a postgresql:// URI; "
        "for a remote MLflow server, open its own URL instead",
    )


def _parse_sqlite(text: str, rest: str, example: str) -> Store:
    # sqlite:////abs/path.db -> rest is "////abs/path.db": three slashes, then the absolute path.
    slashes = len(rest) - len(rest.lstrip("/"))
    path = rest[3:] if slashes >= 3 else ""
    if slashes != 4 or "?" in path:
        if "?" in path:
            cause = f"The SQLite URI {text!r} has query options, which this app does not accept"
        else:
            cause = f"The SQLite URI {text!r} must have four slashes before an absolute path"
        shown = rest.lstrip("/").split("?")[0]
        if "/" not in shown:  # a bare file name: the job's directory is not where the user thinks
            shown = posixpath.dirname(example).lstrip("/") + "/" + shown
        raise StoreUriError(cause, f"Write it as 'sqlite:////{shown}' (sqlite: then //// then the path from the root)")
    # Kept verbatim, as SQLAlchemy reads it: no percent-decoding.
    return Store(SQLITE, _absolute(path, "", original=text, example=example))


def _parse_file(text: str, rest: str, example: str) -> Store:
    if rest.startswith("//"):
        authority, _, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise StoreUriError(
                f"The file URI {text!r} names the host {authority!r}",
                "Use file:/// followed by the absolute path on this cluster",
            )
        path = "/" + path
    else:
        path = rest
    return Store(DIRECTORY, _absolute(unquote(path), "", original=text, example=example))


def _absolute(path: str, home: str, original: str, example: str) -> str:
    if path == "~" or path.startswith("~/"):
        if home:
            path = home + path[1:]
    if not path.startswith("/"):
        raise StoreUriError(
            f"The tracking store {original!r} is not an absolute path",
            f"Give the full path from the root, e.g. {example} "
            "(the job does not start in the directory you have in mind)",
        )
    normal = posixpath.normpath(path)
    # normpath keeps a leading '//' (POSIX allows it to mean something else); we do not.
    return "/" + normal.lstrip("/")
