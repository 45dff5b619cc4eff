"""The store is the user's: read-only sessions never write it, an upgrade keeps a
backup and writes nothing through a link a project member planted in the store's
folder, parallel-file-system hazards are named, hostile form values run nothing.

Stores are made by real MLflow 2.22 and 3.17; the sha256 of every file is
compared before and after each session that must not change them.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.ood import stage
from devportal.testbed import OTHER, OWNER, STORES_ROOT, as_user, make_store, own_tree, share_with, tree_digest


def assert_changes_refused(client):
    status, answer = client.api("POST", "experiments/update",
                                {"experiment_id": client.experiment_id(), "new_name": "changed"})
    assert status == 403 and answer["error_code"] == "PERMISSION_DENIED", answer
    assert "read-only" in answer["message"]
    status, answer = client.api("POST", "experiments/create", {"name": "planted"})
    assert status == 403, answer


@pytest.mark.parametrize("kind,store_major,env_major,how", [
    ("sqlite", "3", "3", "SQLite's read-only mode"),
    ("sqlite", "2", "3", "upgraded to MLflow 3.17.2's schema"),
    ("file", "3", "3", ""),
    ("file", "2", "2", ""),
])
def test_read_only_sessions_browse_and_never_write(launch, site_config, users, kind, store_major, env_major, how):
    store = make_store(kind, store_major, OWNER, name="-read-only")
    directory = Path(store).parent
    before = tree_digest(directory)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"}, site_config(env_major))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert_changes_refused(client)
    info = html.unescape(job.session.render_info())
    assert "Read-only." in info and how in info
    job.cancel()
    assert tree_digest(directory) == before, "a read-only session changed the store"


def test_upgrade_in_place_keeps_a_backup(launch, site_config, users):
    store = make_store("sqlite", "2", OWNER, name="-upgrade")
    original = tree_digest(Path(store).parent)["mlruns.db"]
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "upgrade"}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=180))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    backup = plan["backup"]
    assert backup.startswith(store + ".backup-") and os.path.exists(backup)
    assert tree_digest(Path(store).parent)[os.path.basename(backup)] == original, "the backup is not the old store"
    assert backup in job.session.render_info()
    assert not [name for name in os.listdir(Path(store).parent) if name.startswith(".")], "a work folder was left"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("dc11669786a5",)]


def test_an_upgrade_never_writes_through_a_link_a_project_member_planted(launch, site_config, users):
    store = make_store("sqlite", "2", OWNER, name="-upgrade-planted")
    folder = Path(store).parent
    owner = pwd.getpwnam(OWNER)
    private = Path(owner.pw_dir) / "private-upgrade"  # another store of the owner's, outside the shared folder
    private.mkdir(exist_ok=True)
    victim = private / "mlruns.db"
    shutil.copyfile(store, victim)
    for path in (private, victim):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    before = victim.read_bytes()
    own_tree(folder, OWNER, 0o755)
    share_with(folder, OTHER)
    as_user(OTHER, "ln", "-sf", str(victim), store)  # replaces the store in the shared folder
    listing = sorted(os.listdir(folder))
    try:
        job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "upgrade"}, site_config("3"))
        job.wait_finished(timeout=90)
        errors = output_lines(job.session, "ERROR:")
        assert len(errors) == 1 and "is a symbolic link" in errors[0] and f"user {OTHER}" in errors[0], errors
        assert str(victim) in errors[0]
        assert victim.read_bytes() == before, "the owner's other store was upgraded through the link"
        assert sorted(os.listdir(folder)) == listing, "a backup or a work folder was made"
    finally:
        shutil.rmtree(private)


def test_wal_store_gets_a_warning_and_still_opens(launch, site_config, users):
    store = make_store("sqlite", "3", OWNER, name="-wal")
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA journal_mode=WAL")
    own_tree(Path(store).parent, OWNER)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=150))
    warnings = output_lines(job.session, "WARNING:")
    assert len(warnings) == 1 and "WAL journal mode" in warnings[0] and "PRAGMA journal_mode=DELETE" in warnings[0]
    assert "WARNING: The SQLite store" in html.unescape(job.session.render_info()), "the card must show the warning"
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert not output_lines(job.session, "ERROR:")


def test_locked_database_answers_with_a_message_not_a_crash(launch, site_config, users):
    store = make_store("sqlite", "3", OWNER, name="-locked")
    job = launch({"mlflow_tracking_uri": store}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    experiment = client.experiment_id()
    locker = sqlite3.connect(store, timeout=1, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(35, locker.rollback)
    release.start()
    try:
        status, answer = client.api("POST", "runs/search", {"experiment_ids": [experiment]})
        assert status >= 500 and "locked" in json.dumps(answer), (status, answer)
    finally:
        release.cancel()
        locker.rollback()
        locker.close()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"], "the server did not recover"
    assert not job.finished()


HOSTILE = ["/tmp/x $(touch {m}) `touch {m}`; touch {m}", "x'; touch {m}; '", 'x"; touch {m}; "',
           "x\ntouch {m}\n", "$(touch {m})"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_form_values_never_execute(launch, site_config, stores, tmp_path, value):
    # A place the session's owner could write to, were anything executed.
    writable = Path(tempfile.mkdtemp(prefix="ood-mlflow-hostile-"))
    writable.chmod(0o1777)
    marker = writable / "pwned"
    hostile = value.format(m=marker)
    env = site_config("3")
    for field in ("bc_account", "bc_queue", "mlflow_environment", "mlflow_num_cores", "mlflow_store_access"):
        try:
            session = stage({"mlflow_tracking_uri": stores("sqlite"), field: hostile}, env=env, dataroot=tmp_path)
        except Exception as refused:  # the dashboard shows it on the form page
            assert "ERROR:" in str(refused) or "no longer offered" in str(refused), refused
            continue
        for script in ("before.sh", "after.sh", "script.sh", "environment.sh"):
            assert str(marker) not in (session.staged_root / script).read_text(), f"{field} reached {script}"
    job = launch({"mlflow_tracking_uri": hostile}, env)
    job.wait_finished(timeout=60)
    assert len(output_lines(job.session, "ERROR:")) == 1
    time.sleep(1)
    assert not marker.exists(), "a form value was executed"
    # The marker's place is really writable for the owner: the check above can fail.
    proof = subprocess.run(["runuser", "-u", OWNER, "--", "touch", str(writable / "proof")])
    assert proof.returncode == 0
    shutil.rmtree(writable)


def test_a_path_with_spaces_quotes_and_dollars_works(launch, site_config, users):
    weird = STORES_ROOT / "it's a \"project\" $(dir)"
    store = make_store("sqlite", "3", OWNER, name="-weird")
    weird.mkdir(exist_ok=True)
    target = weird / "my runs.db"
    os.replace(store, target)
    own_tree(weird, OWNER, 0o755)
    job = launch({"mlflow_tracking_uri": str(target)}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert f"sqlite:///{target}" in job.session.render_info().replace("&quot;", '"').replace("&#39;", "'")
