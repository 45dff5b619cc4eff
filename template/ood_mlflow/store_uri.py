"""Turn what a user typed into the form into one tracking store.

Pure functions only: nothing here touches the file system, so the rules can be
tested on their own. Checking that the store exists and can be read is
`store_checks`' job.

Accepted forms (the same strings training code gives `mlflow.set_tracking_uri`):
  /scratch/p/mlruns             a directory store
  /scratch/p/mlruns.db          an SQLite file (.db, .sqlite, .sqlite3)
  ~/mlruns                      the user's home is expanded by the caller
  file:///scratch/p/mlruns      a directory store
  sqlite:////scratch/p/mlruns.db
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import LaunchError

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
KNOWN_SCHEMES = ("file", "sqlite")


class StoreUriError(LaunchError):
    """A form value that cannot name a store."""


@dataclass(frozen=True)
class Store:
    kind: str  # "file" (a directory) or "sqlite"
    path: str  # absolute, normalised file-system path

    @property
    def backend_uri(self) -> str:
        """What `mlflow server --backend-store-uri` gets."""
        if self.kind == "sqlite":
            return "sqlite:///" + self.path
        return self.path

    @property
    def tracking_uri(self) -> str:
        """What training code passes to `mlflow.set_tracking_uri` for this store."""
        return self.backend_uri

    @property
    def default_artifact_root(self) -> str:
        """Where experiments created in the UI keep artifacts: beside the store.

        A directory store keeps them inside itself, as MLflow's own client does;
        an SQLite file gets `mlartifacts` next to it.
        """
        if self.kind == "sqlite":
            return posixpath.join(posixpath.dirname(self.path), "mlartifacts")
        return self.path


def parse_store(value: str, home: str = "") -> Store:
    """Return the store a form value names, or raise StoreUriError."""
    text = (value or "").strip()
    if not text:
        raise StoreUriError(
            "No tracking store was given",
            "Enter the directory or SQLite file your training jobs log to, "
            "e.g. /scratch/project_2001234/mlruns",
        )
    if "\n" in text or "\r" in text or "\x00" in text:
        raise StoreUriError(
            "The tracking store contains a line break or NUL character",
            "Enter the path on one line",
        )
    if "://" in text or text.startswith(("file:", "sqlite:")):
        return _parse_uri(text)
    path = _absolute(text, home, original=text)
    kind = "sqlite" if path.lower().endswith(SQLITE_SUFFIXES) else "file"
    return Store(kind, path)


def _parse_uri(text: str) -> Store:
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _parse_sqlite(text, rest)
    if scheme == "file":
        return _parse_file(text, rest)
    raise StoreUriError(
        f"The tracking store {text!r} uses the scheme '{scheme}:', which this app cannot open",
        "Give a directory path, an SQLite file path, a file:/// URI or a sqlite://// URI; "
        "for a remote MLflow server, open its own URL instead",
    )


def _parse_sqlite(text: str, rest: str) -> Store:
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
            shown = "scratch/project_2001234/" + shown
        raise StoreUriError(cause, f"Write it as 'sqlite:////{shown}' (sqlite: then //// then the path from the root)")
    # Kept verbatim, as SQLAlchemy reads it: no percent-decoding.
    return Store("sqlite", _absolute(path, "", original=text))


def _parse_file(text: str, rest: str) -> Store:
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
    return Store("file", _absolute(unquote(path), "", original=text))


def _absolute(path: str, home: str, original: str) -> str:
    if path == "~" or path.startswith("~/"):
        if home:
            path = home + path[1:]
    if not path.startswith("/"):
        raise StoreUriError(
            f"The tracking store {original!r} is not an absolute path",
            "Give the full path from the root, e.g. /scratch/project_2001234/mlruns "
            "(the job does not start in the directory you have in mind)",
        )
    normal = posixpath.normpath(path)
    # normpath keeps a leading '//' (POSIX allows it to mean something else); we do not.
    return "/" + normal.lstrip("/")
