"""Looking at a PostgreSQL store before MLflow opens it, without changing it.

The check connects with the driver the MLflow environment has, in a read-only
transaction (default_transaction_read_only), so nothing it does can create or
change anything in the database. libpq reads the password from ~/.pgpass.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import LaunchError
from .postgres_uri import PGPASS_FIX, PostgresTarget, connection_options

# The Python package each driver comes from (what to install when it is missing).
PACKAGES = {"psycopg": "psycopg[binary] (psycopg 3)", "psycopg2": "psycopg2-binary (or psycopg2)"}
# SQLSTATEs of the server's refusals (PostgreSQL's errcodes).
LOGIN_REFUSED = ("28P01", "28000")  # invalid_password, invalid_authorization_specification
NO_DATABASE = "3D000"  # invalid_catalog_name


def pick_driver(requested: str, environment: str = "") -> str:
    """The driver to use: the one the URI names, else psycopg 3, else psycopg2; raise if it is missing."""
    where = f"the environment {environment!r}" if environment else "the chosen MLflow environment"
    candidates = (requested,) if requested else ("psycopg", "psycopg2")
    for name in candidates:
        if importlib.util.find_spec(name) is not None:
            return name
    if requested:
        raise LaunchError(f"The tracking URI asks for the PostgreSQL driver {requested}, which {where} lacks",
                          f"Write the URI as postgresql://... to use the driver it has, or ask your site's "
                          f"administrators to install {PACKAGES[requested]} into it")
    raise LaunchError(f"{where[0].upper() + where[1:]} has no PostgreSQL driver for Python (neither psycopg nor "
                      f"psycopg2 is installed)", f"Ask your site's administrators to install "
                      f"{PACKAGES['psycopg']} or {PACKAGES['psycopg2']} into it (pip install 'mlflow[db]' does)")


@dataclass(frozen=True)
class Contents:
    tables: frozenset  # the tables of the database's default schema
    revisions: frozenset  # what alembic_version records (MLflow's schema revision)


def inspect(target: PostgresTarget, driver: str) -> Contents:
    """Connect read-only and read the tables and the schema revision, or raise a LaunchError naming why not."""
    module = importlib.import_module(driver)
    try:
        connection = module.connect(target.libpq_uri, **dict(connection_options(read_only=True)))
    except module.Error as error:
        raise connection_error(target, error) from None
    try:
        cursor = connection.cursor()
        # pg_tables lists every table, also those the user may not read (information_schema would hide them).
        cursor.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()")
        tables = frozenset(row[0] for row in cursor.fetchall())
        revisions = frozenset()
        if "alembic_version" in tables:
            cursor.execute("SELECT version_num FROM alembic_version")
            revisions = frozenset(row[0] for row in cursor.fetchall())
        return Contents(tables, revisions)
    except module.Error as error:
        raise LaunchError(f"The PostgreSQL database {target.display!r} could not be read: {_first_line(error)}",
                          "Ask the database's owner to grant you read access to its tables (GRANT SELECT)") from None
    finally:
        connection.rollback()
        connection.close()


def connection_error(target: PostgresTarget, error: Exception) -> LaunchError:
    """What went wrong when connecting, in the user's terms."""
    text = _first_line(error)
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) or ""
    lower = str(error).lower()
    server = f"{target.host}:{target.port}"
    who = target.user or "your login name"
    if code == NO_DATABASE or ("database" in lower and "does not exist" in lower):
        return LaunchError(f"The PostgreSQL server {server} has no database {target.dbname!r} ({text})",
                           "Check the database name in the tracking URI: it must be the one your training jobs "
                           "log to (your database service lists your databases)")
    login_words = ("password authentication failed", "no password supplied", "authentication failed", "pg_hba.conf")
    no_role = 'role "' in lower and "does not exist" in lower
    if code in LOGIN_REFUSED or any(s in lower for s in login_words) or no_role:
        return LaunchError(f"The PostgreSQL server {server} refused the login of {who} to {target.dbname!r} ({text})",
                           f"Check the user name in the tracking URI, and {PGPASS_FIX}")
    if any(s in lower for s in ("could not translate host name", "name or service not known")):
        return LaunchError(f"The PostgreSQL server's name {target.host!r} is unknown on this node ({text})",
                           "Check the host in the tracking URI against what your database service gave you")
    return LaunchError(f"The PostgreSQL server {server} cannot be reached from this node ({text})",
                       "Check the host and port in the tracking URI and that the database service is up; "
                       "ask your site's support whether compute nodes may connect to it")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
