"""How to open a store, given what the user chose on the form (pure).

The Store access modes (form field mlflow_store_access) are declared once, in ACCESS_MODES: the form's
options (form.yml.erb), bin/launch-local's --access and the settings' check follow it, and
tests/test_access_modes.py keeps the form and the launcher's help to it. A PostgreSQL store is served only at
its own schema (postgres_action); read-only is then enforced by the database server itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LaunchError
from .kinds import DIRECTORY, KINDS, POSTGRESQL, SQLITE, kind_of
from .schema import NEWER, NOT_MLFLOW, OLDER, SAME

WRITE, READ_ONLY, UPGRADE, CONVERT = "write", "read_only", "upgrade", "convert"


@dataclass(frozen=True)
class AccessMode:
    value: str  # the form's option value, the session's `access`, bin/launch-local's --access
    label: str  # the form's option text
    does: str  # what the session does with the store
    writes_store: bool  # whether the session may change the store (if not, the gate refuses every change)
    kinds: tuple  # the store kinds it may be chosen for
    closes_slurm_runs: bool  # whether the session may close runs whose Slurm job ended (the form hides the box)


ALL_KINDS = tuple(kind.name for kind in KINDS)
ACCESS_MODES = (  # the first is the default
    AccessMode(WRITE, "Read and write", "open the store as it is, if MLflow will not change its schema",
               writes_store=True, kinds=ALL_KINDS, closes_slurm_runs=True),
    AccessMode(READ_ONLY, "Read-only: browse, change nothing",
               "browse only: the gate refuses every change, and the store is opened read-only as its kind allows "
               "(stores/kinds.py), for an SQLite store maybe as a node-local copy, so the store is never written",
               writes_store=False, kinds=ALL_KINDS, closes_slurm_runs=False),
    # On a store at this MLflow's schema it is Read and write; an older PostgreSQL store is left to its owner.
    AccessMode(UPGRADE, "Upgrade an older SQLite store to this MLflow version (backup first)",
               "migrate an older SQLite store's schema in place, after a backup copy",
               writes_store=True, kinds=ALL_KINDS, closes_slurm_runs=False),
    # The directory is only read; the SQLite file made from it is served as it is.
    AccessMode(CONVERT, "Convert a directory store to SQLite (faster; MLflow 3.x)",
               "copy a directory store into an SQLite file beside it (MLflow's migrate-filestore) and serve that file",
               writes_store=True, kinds=(DIRECTORY,), closes_slurm_runs=False),
)
ACCESS_CHOICES = tuple(mode.value for mode in ACCESS_MODES)
_BY_VALUE = {mode.value: mode for mode in ACCESS_MODES}


def access_mode(value: str) -> AccessMode:
    """The entry for a Store access value (KeyError for one this app does not know: settings refuses it)."""
    return _BY_VALUE[value]

SERVE = "serve"  # open the store itself
SERVE_READ_ONLY = "serve-read-only"  # open the SQLite file in SQLite's read-only mode
COPY = "copy"  # serve a node-local copy
COPY_UPGRADE = "copy-upgrade"  # serve a node-local copy, upgraded to this MLflow's schema
BACKUP_UPGRADE = "backup-upgrade"  # back up, then upgrade the store in place


def sqlite_action(access: str, state: str, wal: bool, path: str, revisions, version: str, heads) -> str:
    """What to do with an SQLite store, or raise LaunchError with the choices."""
    found, expected = ", ".join(sorted(revisions)) or "none", ", ".join(sorted(heads))
    if state == NOT_MLFLOW:
        raise LaunchError(
            f"{path!r} is an SQLite database but not an MLflow store (it has no alembic_version table)",
            "Give the .db file your training code logs to",
        )
    if state == NEWER:
        raise newer_schema(SQLITE, path, version, found, expected)
    if access == READ_ONLY:
        if state == SAME and not wal:
            return SERVE_READ_ONLY
        return COPY_UPGRADE if state == OLDER else COPY
    if state == SAME:
        return SERVE
    if access == UPGRADE:
        return BACKUP_UPGRADE
    raise LaunchError(
        f"The SQLite store {path!r} has schema revision {found}, but MLflow {version} expects {expected}: "
        f"opening it would migrate it in place, and training jobs on the older MLflow could no longer "
        f"write to it",
        "Choose the MLflow version your training jobs use; or choose Store access 'Read-only' (you see an "
        "upgraded copy, the store is not changed) or 'Upgrade an older SQLite store' (a backup copy is made first)",
    )


def newer_schema(kind: str, location: str, version: str, found: str, expected: str) -> LaunchError:
    """The refusal of a store of a schema revision this MLflow does not know, in every access mode: it cannot
    migrate the store down, so not even a copy of it would open."""
    return LaunchError(
        f"The {kind_of(kind).message_name} {location!r} was written by a newer MLflow than {version} "
        f"(its schema revision {found} is unknown to {version}, which expects {expected})",
        "Choose the MLflow version your training jobs use (or a newer one) on the form",
    )


def postgres_action(access: str, has_tables: bool, state: str, uri: str, revisions, version: str, heads) -> str:
    """What to do with a PostgreSQL store (SERVE or SERVE_READ_ONLY), or raise LaunchError with the choices.

    A database cannot be copied node-local as an SQLite file can, so a store of another schema is
    never opened: not even read-only (MLflow would migrate it), and Upgrade is left to the user, who
    can keep a backup they know how to restore (pg_dump), which the app could not promise."""
    found, expected = ", ".join(sorted(revisions)) or "none", ", ".join(sorted(heads))
    if access == CONVERT:
        raise LaunchError(f"{uri!r} is a PostgreSQL store; 'Convert to SQLite' applies to directory stores",
                          "Choose Store access 'Read and write' (or 'Read-only')")
    if not has_tables:
        raise LaunchError(f"The PostgreSQL database {uri!r} is empty: it holds no MLflow store yet, and this app "
                          f"does not create one", "Log a first run into it from your training code "
                          "(mlflow.set_tracking_uri with this URI creates the store), then launch again")
    if state == NOT_MLFLOW:
        raise LaunchError(f"The PostgreSQL database {uri!r} holds tables but no MLflow store (it has no "
                          f"alembic_version table)", "Give the database your training code logs to")
    if state == NEWER:
        raise newer_schema(POSTGRESQL, uri, version, found, expected)
    if state == SAME:
        return SERVE_READ_ONLY if access == READ_ONLY else SERVE
    upgrade_by_hand = (f"to upgrade it, when no job writes to it, back it up and migrate it by hand: "
                       f"pg_dump --format=custom --file=mlflow-backup.dump '{uri}', then "
                       f"python3 -m mlflow db upgrade '{uri}' with MLflow {version}")
    if access == UPGRADE:
        raise LaunchError(
            f"The PostgreSQL store {uri!r} has schema revision {found}, older than MLflow {version}'s ({expected}), "
            f"and this app upgrades only SQLite stores itself (only for those can it keep a backup copy)",
            upgrade_by_hand[0].upper() + upgrade_by_hand[1:])
    raise LaunchError(
        f"The PostgreSQL store {uri!r} has schema revision {found}, but MLflow {version} expects {expected}: "
        f"opening it{' even read-only' if access == READ_ONLY else ''} would migrate it in place, and training "
        f"jobs on the older MLflow could no longer write to it",
        f"Choose the MLflow version your training jobs use on the form; or, {upgrade_by_hand}")
