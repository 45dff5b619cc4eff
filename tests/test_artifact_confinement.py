"""A session reads and writes artifacts only inside the store (and the roots the site adds).

Attacks from the security review, each through the session's own API with the
owner's cookie (what a page on the portal origin could make the owner's browser do):
- the chain: an experiment whose artifact_location is the store root, a run in it,
  and an uploaded meta.yaml that makes MLflow see a run named `artifacts` whose
  artifact_uri is the owner's home; then read the owner's key and write .bashrc;
- the planted run: a project member edits a run's artifact_uri in a shared SQLite
  store to point at the owner's home;
- the planted symlink named twice-encoded: a link in a run's artifact folder to the
  owner's home, asked for as `lnk%252F...`, which the web server decodes once and
  MLflow again.
All must be refused on MLflow 3.17 and 2.22, with nothing written outside the
store, while the store's own artifacts are still served.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devportal.client import SessionClient
from devportal.testbed import OWNER, make_store

SECRET_TEXT = "-----BEGIN OPENSSH PRIVATE KEY----- the owner's key"


@pytest.fixture
def owners_home(users):
    """A private file in the owner's home, and the home's state to compare afterwards."""
    entry = pwd.getpwnam(OWNER)
    home = Path(entry.pw_dir)
    key = home / "secret-key.txt"
    key.write_text(SECRET_TEXT)
    os.chown(key, entry.pw_uid, entry.pw_gid)
    key.chmod(0o600)
    before = top_files(home)
    yield home
    assert top_files(home) == before, "a file in the owner's home appeared or changed"
    key.unlink()


def top_files(home: Path) -> dict:
    """The files directly in the home and their bytes (the session's own folders are directories)."""
    return {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}


def get_artifact(client, query: dict):
    return client.request("GET", "/get-artifact?" + urlencode(query))


def upload(client, query: dict, body: bytes):
    return client.request("POST", "/ajax-api/2.0/mlflow/upload-artifact?" + urlencode(query), body,
                          {"Content-Type": "application/octet-stream"})


def assert_refused(answer, what, because=b"artifact_roots"):
    status, _, body = answer
    assert status == 403, f"{what}: {status} {body[:300]!r}"
    assert SECRET_TEXT.encode() not in body
    assert because in body, body


def assert_own_artifacts_served(client):
    run = client.api("POST", "runs/search", {"experiment_ids": [client.experiment_id()], "max_results": 1})[1]
    run_id = run["runs"][0]["info"]["run_id"]
    status, _, body = get_artifact(client, {"run_uuid": run_id, "path": "notes.txt"})
    assert status == 200 and body.startswith(b"Notes for run-"), (status, body[:200])
    status, listed = client.api("GET", "artifacts/list?" + urlencode({"run_id": run_id}))
    assert status == 200 and [f["path"] for f in listed["files"]] == ["notes.txt"], listed


def fake_run_meta(experiment_id: str, artifact_uri: str) -> bytes:
    return "\n".join([
        f"artifact_uri: {artifact_uri}", "end_time: null", "entry_point_name: ''", f"experiment_id: '{experiment_id}'",
        "lifecycle_stage: active", "run_id: artifacts", "run_name: planted", "run_uuid: artifacts",
        "source_name: ''", "source_type: 4", "source_version: ''", "start_time: 1", "status: 1", "tags: []",
        "user_id: x", ""]).encode()


@pytest.mark.parametrize("major", ["3", "2"])
def test_the_artifact_chain_is_stopped_at_the_store(launch, site_config, owners_home, major):
    store = make_store("file", major, OWNER, name="-chain")
    client = SessionClient(launch({"mlflow_tracking_uri": store}, site_config(major)).wait_running(timeout=150))
    client.login()
    status, made = client.api("POST", "experiments/create", {"name": "chain", "artifact_location": store})
    assert status == 200, made
    status, run = client.api("POST", "runs/create", {"experiment_id": made["experiment_id"]})
    assert status == 200, run
    run_id = run["run"]["info"]["run_id"]
    # Uploading inside the store is allowed: <store>/<run>/artifacts gets what MLflow's directory
    # store takes for a run folder (meta.yaml, metrics/, params/, artifacts/), so MLflow sees a run
    # `artifacts` in an "experiment" <run>, with the owner's home as its artifact_uri.
    for path, content in [("metrics/loss", b"1 0.5 0\n"), ("params/lr", b"0.1"), ("artifacts/x.txt", b"x"),
                          ("meta.yaml", fake_run_meta(run_id, str(owners_home)))]:
        status, _, body = upload(client, {"run_uuid": run_id, "path": path}, content)
        assert status == 200, body
    # The planted run's ID is a folder name, not one MLflow makes: the gate refuses to name it at all.
    not_an_id = b"not an ID MLflow makes"
    assert_refused(client.request("GET", "/ajax-api/2.0/mlflow/runs/get?run_id=artifacts"), "see it", not_an_id)
    assert_refused(get_artifact(client, {"run_uuid": "artifacts", "path": "secret-key.txt"}), "read the owner's key",
                   not_an_id)
    assert_refused(client.request("GET", "/ajax-api/2.0/mlflow/artifacts/list?run_id=artifacts"), "list the home",
                   not_an_id)
    assert_refused(upload(client, {"run_uuid": "artifacts", "path": ".bashrc"}, b"echo owned\n"), "write .bashrc",
                   not_an_id)
    assert not (owners_home / ".bashrc").exists() or b"owned" not in (owners_home / ".bashrc").read_bytes()
    assert_own_artifacts_served(client)


@pytest.mark.parametrize("major", ["3", "2"])
def test_a_planted_run_in_a_shared_store_cannot_reach_the_home(launch, site_config, owners_home, major):
    store = make_store("sqlite", major, OWNER, name="-planted")
    with sqlite3.connect(store) as db:  # a project member with write access to the shared file
        db.execute("UPDATE runs SET artifact_uri = ? WHERE name = 'run-00001'", (str(owners_home),))
        planted = db.execute("SELECT run_uuid FROM runs WHERE name = 'run-00001'").fetchone()[0]
    client = SessionClient(launch({"mlflow_tracking_uri": store}, site_config(major)).wait_running(timeout=150))
    client.login()
    assert_refused(get_artifact(client, {"run_id": planted, "path": "secret-key.txt"}), "read via a planted run")
    assert_refused(get_artifact(client, {"run_uuid": planted, "path": "secret-key.txt"}), "read via run_uuid")
    assert_refused(upload(client, {"run_uuid": planted, "path": "planted.txt"}, b"x"), "write via a planted run")
    status, answer = client.api("POST", "experiments/create", {"name": "home", "artifact_location": str(owners_home)})
    assert status == 403 and "artifact_roots" in answer["message"], answer
    assert not (owners_home / "planted.txt").exists()
    assert_own_artifacts_served(client)


def test_site_artifact_roots_let_a_session_serve_more(launch, site_config, owners_home):
    store = make_store("sqlite", "3", OWNER, name="-roots")
    with sqlite3.connect(store) as db:
        db.execute("UPDATE runs SET artifact_uri = ? WHERE name = 'run-00001'", (str(owners_home),))
        planted = db.execute("SELECT run_uuid FROM runs WHERE name = 'run-00001'").fetchone()[0]
    env = site_config("3", artifact_roots=[str(owners_home)])
    client = SessionClient(launch({"mlflow_tracking_uri": store}, env).wait_running(timeout=150))
    client.login()
    status, _, body = get_artifact(client, {"run_id": planted, "path": "secret-key.txt"})
    assert status == 200 and body == SECRET_TEXT.encode(), "a site's artifact_roots must be served"


@pytest.mark.parametrize("major", ["3", "2"])
def test_a_symlink_named_twice_encoded_is_refused(launch, site_config, owners_home, major):
    store = make_store("file", major, OWNER, name="-encoded")
    client = SessionClient(launch({"mlflow_tracking_uri": store}, site_config(major)).wait_running(timeout=150))
    client.login()
    found = client.api("POST", "runs/search", {"experiment_ids": [client.experiment_id()], "max_results": 2})[1]
    run_id = found["runs"][1]["info"]["run_id"]  # not the run assert_own_artifacts_served lists
    artifacts = next(Path(store).glob(f"*/{run_id}/artifacts"))
    (artifacts / "lnk").symlink_to(owners_home)  # a project member's link in a shared store
    os.lchown(artifacts / "lnk", pwd.getpwnam(OWNER).pw_uid, -1)
    # urlencode writes lnk%252Fsecret-key.txt: the web server hands lnk%2Fsecret-key.txt on, MLflow decodes it again.
    for path in ("lnk%2Fsecret-key.txt", "lnk%2F..%2Flnk%2Fsecret-key.txt"):
        assert_refused(get_artifact(client, {"run_uuid": run_id, "path": path}), "read through the link", b"decod")
        assert_refused(client.request("GET", "/ajax-api/2.0/mlflow/artifacts/list?" + urlencode(
            {"run_id": run_id, "path": path})), "list through the link", b"decod")
    assert_refused(upload(client, {"run_uuid": run_id, "path": "lnk%2F.bashrc"}, b"echo owned\n"),
                   "write through the link", b"decod")
    assert_refused(get_artifact(client, {"run_uuid": run_id, "path": "lnk/secret-key.txt"}), "the plain link")
    assert_own_artifacts_served(client)


@pytest.mark.parametrize("major,previewed", [("2", False), ("3", True)])
def test_the_ui_gets_no_pdf_to_preview_where_its_viewer_runs_code_from_it(launch, site_config, users, major,
                                                                          previewed):
    """MLflow 2.22's UI shows PDFs with pdf.js 2.1, which runs code hidden in a PDF (CVE-2024-4367), and its page
    cannot do without eval; a project member could plant such a file. The UI's fetch of it is refused there,
    a download is not."""
    store = make_store("file", major, OWNER, name="-pdf")
    run_dir = next(p for p in Path(store).glob("*/*") if (p / "artifacts" / "notes.txt").exists())
    planted = run_dir / "artifacts" / "report.pdf"
    planted.write_bytes(b"%PDF-1.4 a planted file")
    entry = pwd.getpwnam(OWNER)
    os.chown(planted, entry.pw_uid, entry.pw_gid)
    client = SessionClient(launch({"mlflow_tracking_uri": store}, site_config(major)).wait_running(timeout=150))
    client.login()
    query = urlencode({"run_uuid": run_dir.name, "path": "report.pdf"})
    status, _, body = client.request("GET", "/get-artifact?" + query, headers={"Sec-Fetch-Dest": "empty"})
    if previewed:
        assert status == 200 and body.startswith(b"%PDF"), (status, body[:200])
    else:
        assert status == 403 and b"CVE-2024-4367" in body and not body.startswith(b"%PDF"), (status, body[:200])
    status, _, body = client.request("GET", "/get-artifact?" + query, headers={"Sec-Fetch-Dest": "document"})
    assert status == 200 and body.startswith(b"%PDF"), "a download of the PDF must still work"
