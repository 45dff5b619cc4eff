"""Convert a directory store to SQLite from the form, with MLflow's own migrate-filestore.

The directory is never changed (every file's sha256 before and after), the new
file sits beside it with every count equal to the directory's (counted from
the directory, not from the tool), in journal_mode=DELETE; a second launch
reuses it; a name taken by another file is never overwritten; a failed
conversion leaves nothing; MLflow 2.22 cannot convert. In a shared folder, a link a project member planted
to the owner's files stops the conversion before anything reads it, and a conversion another user put at the
name is never served.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.testbed import (
    OTHER,
    OWNER,
    add_registry_and_deletions,
    as_user,
    make_store,
    mlflow_python,
    own_tree,
    share_with,
    tree_digest,
)
from ood_mlflow.stores.census import directory_census, sqlite_census
from ood_mlflow.stores.conversion import APPLICATION_ID

SECRET_TEXT = "the owner's private key, never to leave the home"

def enriched_store(major: str, name: str) -> str:
    store = make_store("file", major, OWNER, name=name)
    add_registry_and_deletions(store, major, cwd=Path(store).parent)
    own_tree(Path(store).parent, OWNER, 0o755)
    return store


def assert_same_runs(store: str, converted: str) -> None:
    """The directory's census against the file's, counted apart from the job's own check. MLflow's
    server adds its Default experiment (id 0) to an SQLite store that has none when it starts."""
    directory, sqlite = directory_census(store), sqlite_census(converted)
    assert (directory.runs, directory.params, directory.tags, directory.metric_points) == \
        (sqlite.runs, sqlite.params, sqlite.tags, sqlite.metric_points)
    assert sqlite.experiments - directory.experiments in (0, 1)


def journal_mode(path: str) -> str:
    with open(path, "rb") as fh:
        header = fh.read(20)
    return "wal" if header[18:20] == b"\x02\x02" else "delete"


def info_text(job) -> str:
    return html.unescape(job.session.render_info())


def application_id(path: str) -> int:
    with open(path, "rb") as fh:
        return int.from_bytes(fh.read(72)[68:72], "big")


@pytest.fixture
def owner_secret(users):
    """A private file in the owner's home that no one else can read."""
    entry = pwd.getpwnam(OWNER)
    secret = Path(entry.pw_dir) / "secret-key-convert.txt"
    secret.write_text(SECRET_TEXT)
    os.chown(secret, entry.pw_uid, entry.pw_gid)
    secret.chmod(0o600)
    yield secret
    secret.unlink()


@pytest.mark.parametrize("store_major", ["3", "2"])
def test_convert_then_reuse(launch, site_config, users, store_major):
    store = enriched_store(store_major, f"-convert{store_major}")
    before = tree_digest(store)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=240))
    converted = store + ".db"
    assert os.path.isfile(converted) and journal_mode(converted) == "delete"
    assert application_id(converted) == APPLICATION_ID, "the converted file does not carry this app's mark"
    assert_same_runs(store, converted)
    assert sqlite_census(converted).runs == 4 and sqlite_census(converted).metric_points > 3
    assert not [p for p in os.listdir(Path(store).parent) if p.startswith(".")], "a private work folder was left"
    progress = json.loads((job.session.staged_root / "conversion.json").read_text())
    assert (progress["stage"], progress["runs_done"], progress["runs_total"]) == ("checking", 4, 4)

    client.login()
    assert client.run_names() == ["run-00000", "run-00001"]  # run-00002 was deleted
    found = client.api("POST", "runs/search", {"experiment_ids": [client.experiment_id()],
                                               "filter": "attributes.run_name = 'run-00000'"})[1]
    run_id = found["runs"][0]["info"]["run_id"]
    status, _, body = client.request("GET", "/get-artifact?" + urlencode({"run_uuid": run_id, "path": "notes.txt"}))
    assert status == 200 and body.startswith(b"Notes for run-00000"), "artifacts stay in the directory and are served"
    status, models = client.api("GET", "registered-models/search")
    assert status == 200 and [m["name"] for m in models["registered_models"]] == ["demo-model"]
    card = info_text(job)
    assert f'mlflow.set_tracking_uri("sqlite:///{converted}")' in card
    assert "Artifacts stay in" in card and store in card
    job.cancel()
    assert tree_digest(store) == before, "converting changed the directory store"

    again = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    SessionClient(again.wait_running(timeout=150))
    assert "converted earlier" in info_text(again)
    assert "Serving " in again.session.output() and not os.path.exists(store + "-converted.db")
    assert tree_digest(store) == before


def test_a_taken_name_is_never_overwritten(launch, site_config, users):
    store = enriched_store("3", "-convert-taken")
    taken = Path(store + ".db")
    taken.write_bytes(b"somebody's notes, not a database")
    own_tree(Path(store).parent, OWNER, 0o755)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=240))
    assert taken.read_bytes() == b"somebody's notes, not a database"
    assert_same_runs(store, store + "-converted.db")
    assert f"sqlite:///{store}-converted.db" in info_text(job)
    client.login()
    assert client.run_names() == ["run-00000", "run-00001"]


def test_a_link_a_project_member_planted_stops_the_conversion_before_anything_reads_it(launch, site_config,
                                                                                        owner_secret):
    store = enriched_store("3", "-convert-planted")
    share_with(Path(store).parent, OTHER)
    param = next(Path(store).glob("[0-9]*/*/params/*"))
    as_user(OTHER, "sh", "-c", 'rm -f "$1" && ln -s "$2" "$1"', "plant", str(param), str(owner_secret))
    before = tree_digest(store)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    assert job.wait_finished(timeout=120) < 120
    errors = output_lines(job.session, "ERROR:")
    assert len(errors) == 1 and "symbolic link that leads out of it" in errors[0], errors
    assert str(param) in errors[0] and str(owner_secret) in errors[0] and f"user {OTHER}" in errors[0]
    assert "Remove the link" in errors[0]
    assert sorted(os.listdir(Path(store).parent)) == ["mlruns"], "a converted or temporary file was left"
    assert tree_digest(store) == before
    assert SECRET_TEXT not in job.session.output()


def test_a_conversion_another_user_put_at_the_name_is_never_served(launch, site_config, users):
    store = enriched_store("3", "-convert-others")
    share_with(Path(store).parent, OTHER)
    # Another project member's file at <store>.db: a real conversion holding every run, marked as this app's.
    theirs = store + ".db"
    subprocess.run([str(mlflow_python("3")), "-m", "mlflow", "migrate-filestore", "--source", store, "--target",
                    f"sqlite:///{theirs}", "--no-progress"], cwd=Path(store).parent, check=True, capture_output=True,
                   timeout=300)
    with sqlite3.connect(theirs) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    other = pwd.getpwnam(OTHER)
    os.chown(theirs, other.pw_uid, other.pw_gid)
    before = Path(theirs).read_bytes()
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=240))
    assert "converted earlier" not in info_text(job)
    assert f"sqlite:///{store}-converted.db" in info_text(job)
    assert Path(theirs).read_bytes() == before
    assert os.stat(store + "-converted.db").st_uid == pwd.getpwnam(OWNER).pw_uid
    client.login()
    assert client.run_names() == ["run-00000", "run-00001"]


def test_a_failed_conversion_leaves_nothing(launch, site_config, users):
    store = enriched_store("3", "-convert-broken")
    run_meta = next(Path(store).glob("[0-9]*/*/meta.yaml"))
    run_meta.write_text("artifact_uri: [unclosed\n  : : :\n")  # a damaged meta.yaml
    before = tree_digest(store)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("3"))
    assert job.wait_finished(timeout=120) < 120
    errors = output_lines(job.session, "ERROR:")
    assert len(errors) == 1 and store in errors[0], errors
    assert sorted(os.listdir(Path(store).parent)) == ["mlruns"], "a partial or converted file was left"
    assert tree_digest(store) == before


def test_mlflow_2_cannot_convert(launch, site_config, users):
    store = make_store("file", "2", OWNER, name="-convert-on-2")
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "convert"}, site_config("2"))
    job.wait_finished(timeout=60)
    errors = output_lines(job.session, "ERROR:")
    assert len(errors) == 1 and "migrate-filestore" in errors[0] and "MLflow 3" in errors[0], errors
    assert sorted(os.listdir(Path(store).parent)) == ["mlruns"]


@pytest.mark.parametrize("folder,name", [("p%3Fq #1", "a?b.db"), ("it's \"quoted\"", "x%41 y.db"),
                                         ("dir%41?#", "mlruns")])
def test_store_paths_open_exactly_the_file_given(launch, site_config, users, folder, name):
    kind = "file" if name == "mlruns" else "sqlite"
    made = Path(make_store(kind, "3", OWNER, name=f"-exact-{kind}-{len(name)}"))
    target = made.parent / folder / name
    target.parent.mkdir()
    os.replace(made, target)
    own_tree(made.parent, OWNER, 0o755)
    listing = sorted(os.listdir(target.parent))
    job = launch({"mlflow_tracking_uri": str(target)}, site_config("3"))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert sorted(os.listdir(target.parent)) == listing, "another file was created or opened beside the store"
    assert not output_lines(job.session, "ERROR:")
    shutil.rmtree(made.parent)
