"""Checks made in before.sh, before anything starts: can this launch work, and how?

A launch that cannot work ends here, within seconds, with one ERROR line. A
launch that can is written down as the session's Plan (session.py), which
script.sh (serve.py), the gate, after.sh (ready.py) and the session card follow.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import settings
from .confinement import confined_tool
from .errors import LaunchError, report, warn
from .plan import Plan, write_plan
from .server import node_local
from .server.installed_mlflow import has_migrate_filestore, major_minor, mlflow_version, sqlalchemy_decodes_percent
from .session import PROGRESS_FILE, SESSION_DIR, portal_path, public_prefix
from .stores import conversion, postgres
from .stores.access import (
    BACKUP_UPGRADE,
    CONVERT,
    COPY,
    COPY_UPGRADE,
    SERVE_READ_ONLY,
    WRITE,
    access_mode,
    postgres_action,
    sqlite_action,
)
from .stores.checks import check_store
from .stores.kinds import DIRECTORY, FILE_STORE_OPT_IN, POSTGRESQL, SQLITE, kind_of
from .stores.links import link_owner, refuse_outward_links
from .stores.schema import compare, mlflow_migrations
from .stores.sqlite import copy_database, is_wal, schema_revisions
from .stores.uri import Store, parse_store, sqlite_url

# From this MLflow on the opt-in is needed, so training code must set it too: the card tells them.
FILE_STORE_OPT_IN_FROM = (3, 13)


def make_plan(conf: settings.Settings, host: str = "", port: int = 0) -> Plan:
    store = parse_store(conf.tracking_uri, settings.home(), conf.examples_store)
    if store.kind == POSTGRESQL:
        return _postgres_plan(conf, store, host, port)
    store = check_store(store)
    version = mlflow_version(conf.environment)
    decodes = sqlalchemy_decodes_percent()
    access, note = conf.store_access, ""
    if access == CONVERT:
        access = WRITE  # the converted file, as it is
        store, note = _converted(store, version)
    plan = dataclasses.replace(draft_plan(conf, store, access, version, decodes, host, port, time.time()), note=note)
    if store.kind != SQLITE:
        if plan.read_only and not os.path.isdir(os.path.join(store.location, "models")):
            # MLflow's registry would create an empty models/ in the store: keep it node-local.
            registry = node_local.make_folder("ood-mlflow-registry-")
            return dataclasses.replace(plan, registry_uri=registry, scratch=(registry,))
        return plan
    wal = is_wal(store.location)
    if wal:
        warn(f"The SQLite store {store.location!r} is in WAL journal mode (as `mlflow migrate-filestore` leaves it), "
             f"which is unsafe on parallel file systems such as Lustre. Fix: when no job writes to it, run: "
             f"sqlite3 {store.location!r} 'PRAGMA journal_mode=DELETE;'")
    revisions = schema_revisions(store.location)
    migrations = mlflow_migrations()
    action = sqlite_action(access, compare(revisions, migrations), wal, store.location, revisions, version,
                           migrations.heads)
    if action == SERVE_READ_ONLY:
        uri = sqlite_url(store.location, read_only=True, decodes_percent=decodes)
        return dataclasses.replace(plan, backend_uri=uri, note="The store is opened in SQLite's read-only mode.")
    if action in (COPY, COPY_UPGRADE):
        return _read_only_copy(plan, store, upgrade=action == COPY_UPGRADE, hint=conf.node_local_hint)
    if action == BACKUP_UPGRADE:
        return _backup_and_upgrade(plan, store)
    return plan


def _postgres_plan(conf: settings.Settings, store: Store, host: str, port: int) -> Plan:
    """A PostgreSQL store: checked read-only, served only at this MLflow's schema, read-only at the server."""
    if not conf.postgresql_allowed:
        raise LaunchError("This site does not offer PostgreSQL tracking stores in the MLflow app",
                          f"Give a directory or SQLite store, e.g. {conf.examples_store}, or ask your site's "
                          f"administrators (postgresql: allowed in the app's site.yml)")
    version = mlflow_version(conf.environment)
    database = store.database
    driver = postgres.pick_driver(database.driver, conf.environment)
    contents = postgres.inspect(database, driver)
    migrations = mlflow_migrations()
    action = postgres_action(conf.store_access, bool(contents.tables), compare(contents.revisions, migrations),
                             store.location, contents.revisions, version, migrations.heads)
    read_only = action == SERVE_READ_ONLY
    note = ("Every transaction of this session is read-only at the database server: nothing in the store can be "
            "changed." if read_only else "")
    return Plan(version, store.kind, store.location, store.location, database.sqlalchemy_url(driver, read_only),
                os.path.join(settings.home() or "/", "mlartifacts"), read_only, note=note,
                **_session_fields(conf, host, port, time.time()))


def draft_plan(conf: settings.Settings, store: Store, access: str, version: str, decodes_percent: bool, host: str,
               port: int, now: float) -> Plan:
    """A directory or SQLite store's Plan before its schema is looked at (pure): what MLflow opens, whether the
    session writes, what training code needs, where the session answers and until when."""
    uri = store.backend_uri(decodes_percent)
    return Plan(version, store.kind, store.location, uri, uri, store.default_artifact_root,
                read_only=not access_mode(access).writes_store,
                file_store_opt_in=FILE_STORE_OPT_IN in kind_of(store.kind).server_environment
                and major_minor(version) >= FILE_STORE_OPT_IN_FROM,
                **_session_fields(conf, host, port, now))


def _session_fields(conf: settings.Settings, host: str, port: int, now: float) -> dict:
    """The Plan's fields that come from the job and the site, whatever the store."""
    return dict(settings=conf, ends_at=int(now) + conf.hours * 3600 if conf.hours else 0, port=port,
                prefix=public_prefix(conf.proxy, host, port), portal_path=portal_path(conf.proxy, host, port),
                slurm_runs=slurm_runs_mode(conf))


def slurm_runs_mode(conf: settings.Settings) -> str:
    """Off where the site switched the look-up off; closing only when asked, in a Read and write session
    (an upgrade or conversion is a session about the store itself, a read-only one never writes)."""
    if not conf.slurm_runs_enabled:
        return "off"
    return "close" if conf.close_slurm_runs and access_mode(conf.store_access).closes_slurm_runs else "report"


def _converted(store: Store, version: str) -> tuple:
    """The SQLite store a directory store is (or was earlier) converted into, and the card's note."""
    if store.kind != DIRECTORY:
        raise LaunchError(f"{store.location!r} is already an SQLite store; 'Convert to SQLite' applies to directory "
                          f"stores", "Choose Store access 'Read and write' (or 'Read-only')")
    if not has_migrate_filestore():
        raise LaunchError(f"MLflow {version} cannot convert directory stores: it has no `mlflow migrate-filestore`",
                          "Choose an MLflow 3.x version that has it (MLflow 3.17 does) on the form")
    refuse_outward_links(store.location)  # before anything reads through them
    run_ids, size = conversion.directory_runs(store.location)
    target, reuse = conversion.choose_target(store.location, run_ids)
    keep = f"Artifacts stay in {store.location}: keep that directory."
    if reuse:
        print(f"Serving {target}, converted earlier from the directory store {store.location}.", flush=True)
        return Store(SQLITE, target), (f"This is the SQLite file converted earlier from {store.location}; runs "
                                         f"logged to the directory since then do not show. {keep}")
    progress_file = SESSION_DIR / PROGRESS_FILE
    print(f"Converting the directory store {store.location} into {target} with MLflow's migrate-filestore.", flush=True)
    census = conversion.convert(store.location, target, lambda *state: conversion.write_progress(
        progress_file, *state), size)
    print(f"Converted {census['runs']} runs of {census['experiments']} experiments into {target}; every count "
          f"matches the directory.", flush=True)
    return Store(SQLITE, target), (f"Converted from the directory store {store.location} ({census['runs']} runs) "
                                     f"into {target}. Point training code at the new tracking URI below. {keep}")


def _read_only_copy(plan: Plan, store: Store, upgrade: bool, hint: str = "") -> Plan:
    size = os.path.getsize(store.location) + sum(os.path.getsize(store.location + side) for side in ("-wal", "-journal")
                                              if os.path.exists(store.location + side))
    # An upgrade rewrites tables: room for a second copy of the largest.
    node_local.check_room(size * (2 if upgrade else 1), "a read-only copy of the store", hint)
    work = node_local.make_folder("ood-mlflow-")
    copy = os.path.join(work, os.path.basename(store.location))
    try:
        copy_database(store.location, copy)
        if upgrade:
            _mlflow_db_upgrade(copy, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # no Plan names it yet, so the clean step would not find it
        raise
    made = time.strftime("%Y-%m-%d %H:%M")
    how = f"upgraded to MLflow {plan.mlflow_version}'s schema" if upgrade else "as it was then"
    print(f"Read-only session: serving a node-local copy of the store ({copy}), {how}.", flush=True)
    return dataclasses.replace(plan, backend_uri=sqlite_url(copy, decodes_percent=sqlalchemy_decodes_percent()),
                    scratch=plan.scratch + (work,),
                    note=f"You see a copy of the store made at {made}, {how}; the store itself "
                         f"is not changed, and runs logged after that time do not show (relaunch to refresh).")


def _backup_and_upgrade(plan: Plan, store: Store) -> Plan:
    directory = os.path.dirname(store.location)
    if not os.access(directory, os.W_OK | os.X_OK) or not os.access(store.location, os.W_OK):
        raise LaunchError(
            f"The store {store.location!r} cannot be upgraded: you cannot write to it or to {directory!r} "
            f"(for the backup copy)",
            "Ask the store's owner to upgrade it, or choose Store access 'Read-only'",
        )
    real = os.path.realpath(store.location)
    if os.path.dirname(real) != os.path.realpath(directory):
        raise LaunchError(
            f"The store {store.location!r} is a symbolic link (made by {link_owner(store.location)}) to {real!r}, "
            f"in another folder, and an upgrade may write only in the store's folder; nothing was changed",
            "If that file is your store, launch with its own path; if you did not make the link, ask its owner "
            "why (anyone who can write the folder can plant one)",
        )
    backup = f"{store.location}.backup-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        copy_database(store.location, backup)
    except FileExistsError:
        raise LaunchError(f"{backup!r} exists already, so the store was not backed up or upgraded",
                          "Relaunch (the backup's name holds the time); if it recurs, ask who made that file") from None
    print(f"Backed up the store to {backup}; upgrading its schema to MLflow {plan.mlflow_version}'s.", flush=True)
    # In place, with the tool allowed to write only in the store's folder (its own private temporary folder
    # there): SQLite's locks keep serialising the upgrade with training jobs that write the store, which keep
    # their file. Upgrading a private copy and renaming it over the store would orphan what any process holding
    # the store open writes after the copy (MLflow clients keep pooled connections) and give the store a new
    # owner. A planted link that leads out of the folder fails with EACCES in the tool; SQLite itself opens its
    # journal, WAL and shm files with O_NOFOLLOW (seen with 3.40), so a link at those names fails too.
    scratch = tempfile.mkdtemp(prefix=".ood-mlflow-upgrading-", dir=directory)
    try:
        _mlflow_db_upgrade(store.location, directory, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dataclasses.replace(plan, backup=backup,
                    note=f"The store's schema was upgraded to MLflow {plan.mlflow_version}'s; "
                         f"a backup of the store as it was is at {backup}.")


def _mlflow_db_upgrade(path: str, work_dir: str, temp_dir: str = "") -> None:
    """`mlflow db upgrade` on the SQLite file `path`, confined to write only in `work_dir` (confined_tool)."""
    url = sqlite_url(path, decodes_percent=sqlalchemy_decodes_percent())
    tool = confined_tool.popen([sys.executable, "-m", "mlflow", "db", "upgrade", url], "db upgrade", (), work_dir,
                               temp_dir, must_open=(path,), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output = tool.communicate()[0]
    if tool.returncode == confined_tool.UNREACHABLE:
        now = (f"is a link made by {link_owner(path)} to {os.path.realpath(path)!r}" if os.path.islink(path)
               else "cannot be opened")
        raise LaunchError(
            f"The store {path!r} changed after it was checked: it now {now}, outside what the upgrade may write "
            f"({work_dir!r}); nothing was upgraded",
            "If you did not make that change, ask who can write the store's folder why; launch again once the store "
            "is back",
        )
    if tool.returncode != 0:
        sys.stdout.write(output[-3000:])
        raise LaunchError(
            f"MLflow could not upgrade the schema of {path!r} (its messages are just above)",
            "Report it to your site's support with this output.log",
        )


def main() -> int:
    # Cancel or the time limit during a copy or a conversion: end through Python, so the `finally` clauses
    # remove the work folders (node-local, or beside the store) that no Plan names yet.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    try:
        plan = make_plan(settings.load(), os.environ.get("host", ""), int(os.environ.get("port") or 0))
    except LaunchError as error:
        report(error)
        return 1
    write_plan(plan)
    mode = " read-only" if plan.read_only else ""
    print(f"MLflow {plan.mlflow_version} will open the {kind_of(plan.store_kind).label} {plan.store_path}{mode}",
          flush=True)
    return 0
