"""The test bed's own PostgreSQL cluster (devportal/services/start-postgres.sh): databases,
stores written into them by real MLflow, and what is in them, read as the server's superuser."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

from devportal.testbed import OWNER, STORES_ROOT, write_demo_store

TOP = Path(os.environ.get("OOD_MLFLOW_PG_DIR", "/srv/ood-mlflow-tests/postgres"))
PORT = int(os.environ.get("OOD_MLFLOW_PG_PORT", "15432"))
HOST = "127.0.0.1"
SOCKET = TOP / "socket"


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    assert found, f"PostgreSQL's {name} is missing: run .ci/install-deps.sh"
    return str(found[-1])


def _as_postgres(argv: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, cwd="/", capture_output=True, text=True,
                          timeout=120, **kwargs)


def sql(query: str, database: str = "postgres") -> list:
    """Rows of `query` (as lists of strings), run as the superuser over the cluster's socket."""
    done = _as_postgres([_bin("psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                         "-h", str(SOCKET), "-p", str(PORT), "-d", database], input=query)
    assert done.returncode == 0, f"psql failed on {query!r}: {done.stderr}"
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def is_running() -> bool:
    return _as_postgres([_bin("pg_isready"), "-q", "-h", str(SOCKET), "-p", str(PORT)]).returncode == 0


def databases() -> list:
    return sorted(row[0] for row in sql("SELECT datname FROM pg_database"))


def create_database(name: str, owner: str = OWNER) -> None:
    """A new, empty database `name` (an earlier one of that name is dropped), owned by `owner`."""
    assert re.fullmatch(r"[a-z0-9_]+", name), name
    sql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
    sql(f'CREATE DATABASE {name} OWNER "{owner}"')


def drop_database(name: str) -> None:
    sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def uri(database: str, user: str = OWNER, scheme: str = "postgresql", port: int = PORT) -> str:
    return f"{scheme}://{user}@{HOST}:{port}/{database}"


def pgpass(user: str = OWNER) -> Path:
    return Path(pwd.getpwnam(user).pw_dir) / ".pgpass"


def researcher_password(user: str = OWNER) -> str:
    """The password start-postgres.sh gave `user`'s role: this cluster's line of their ~/.pgpass (which may hold
    others)."""
    line = f"{HOST}:{PORT}:*:{user}:"
    found = [entry[len(line):] for entry in pgpass(user).read_text().splitlines() if entry.startswith(line)]
    assert len(found) == 1, f"{pgpass(user)} has {len(found)} lines for this cluster"
    return found[0]


def make_store(name: str, major: str, owner: str = OWNER) -> str:
    """A database `name` holding a store written by real MLflow `major` as `owner`'s role, with its
    artifacts in a folder of `owner`'s; returns the URI the user types."""
    create_database(name, owner)
    artifacts = STORES_ROOT / f"pg-{name}-artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    target = uri(name, owner)
    write_demo_store(major, target, artifacts, owner, "--artifacts", str(artifacts / "demo-classifier"),
                     env=dict(os.environ, PGPASSFILE=str(pgpass(owner))))
    return target


def artifacts_of(name: str) -> Path:
    return STORES_ROOT / f"pg-{name}-artifacts"


def digest(database: str) -> str:
    """sha256 of the database's whole schema and data, as pg_dump writes them: compared before and after."""
    done = _as_postgres([_bin("pg_dump"), "-h", str(SOCKET), "-p", str(PORT), "--no-comments", database])
    assert done.returncode == 0, done.stderr
    # pg_dump 15.14+ brackets its output with \restrict <random key> lines, new on every dump.
    dump = "\n".join(line for line in done.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))
    return hashlib.sha256(dump.encode()).hexdigest()
