"""The kernel keeps MLflow inside the store, whatever route or MLflow bug a request finds (Landlock).

Attacks from the security review, through the session's own API with the owner's cookie (what a page on the
portal origin can make the owner's browser do), or by a project member who can write the shared store:
- trace IDs that are paths: a directory store's delete-traces removes `os.path.join(traces, id)`, and MLflow
  3.17's start-trace creates that folder, for absolute IDs and `..` alike (the gate refuses such IDs, and
  start-trace, tests/test_id_shapes.py);
- a symlink planted in a run's artifact folder, read and written through (MLflow 2.22, which follows such
  links itself);
each with the gate's own checks (allowlist, IDs, artifacts) switched off by the test-only setting, so that only
the kernel stands in the way.
Each must fail with nothing outside the store removed, made or read.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.testbed import OWNER, make_store

SECRET_TEXT = "the owner's private key, never to leave the home"
GATE_CHECKS_OFF = "export OOD_MLFLOW_TEST_GATE_CHECKS=off\n"


@pytest.fixture
def home(users):
    """The owner's home with a private folder and a private key in it; the folder is checked again at the end."""
    entry = pwd.getpwnam(OWNER)
    home = Path(entry.pw_dir)
    victim = home / "projects-confinement"
    victim.mkdir(exist_ok=True)
    (victim / "thesis.tex").write_text("years of work")
    (home / "secret-key.txt").write_text(SECRET_TEXT)
    for path in (victim, victim / "thesis.tex", home / "secret-key.txt"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    (home / "secret-key.txt").chmod(0o600)
    yield home
    assert (victim / "thesis.tex").read_text() == "years of work", "a folder in the owner's home was removed"
    shutil.rmtree(victim)
    (home / "secret-key.txt").unlink()


def session(launch, site_config, store: str, major: str, extra_setup: str = "") -> SessionClient:
    job = launch({"mlflow_tracking_uri": store}, site_config(major, extra_setup))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    client.job = job
    return client


def assert_confined(client):
    lines = output_lines(client.job.session, "Files:")
    assert lines and lines[0].startswith("Files: confined to the store by the kernel (Landlock ABI "), lines
    plan = json.loads((client.job.session.staged_root / "plan.json").read_text())
    assert plan["files"] == lines[0]
    assert lines[0] in client.job.session.render_info()


@pytest.mark.parametrize("major", ["3", "2"])
def test_trace_ids_that_are_paths_remove_nothing_outside_the_store(launch, site_config, home, major):
    store = make_store("file", major, OWNER, name="-trace-delete")
    client = session(launch, site_config, store, major, GATE_CHECKS_OFF)
    experiment = client.experiment_id()
    victim = home / "projects-confinement"
    for trace_id in (str(victim), "../../../../../../../.." + str(victim)):
        client.api("POST", "traces/delete-traces", {"experiment_id": experiment, "request_ids": [trace_id],
                                                    "trace_ids": [trace_id]})
        assert (victim / "thesis.tex").exists(), f"delete-traces removed {victim} through the trace ID {trace_id!r}"
    assert_confined(client)


def test_a_trace_id_that_is_a_path_creates_nothing_outside_the_store(launch, site_config, home):
    store = make_store("file", "3", OWNER, name="-trace-create")
    client = session(launch, site_config, store, "3", GATE_CHECKS_OFF)
    target = home / ".bashrc.d" / "planted"
    trace = {"trace": {"trace_info": {
        "trace_id": str(target), "request_time": "2026-01-01T00:00:00Z", "state": "OK",
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": client.experiment_id()}}}}}
    client.request("POST", "/ajax-api/3.0/mlflow/traces", json.dumps(trace), {"Content-Type": "application/json"})
    assert not (home / ".bashrc.d").exists(), "start-trace made a folder in the owner's home"
    assert_confined(client)


def planted_links(store: str, home: Path) -> str:
    """A project member's symlinks in a run's artifact folder: one to the owner's key, one to the home."""
    run_dir = next(p for p in Path(store).glob("*/*") if (p / "artifacts" / "notes.txt").exists())
    artifacts = run_dir / "artifacts"
    uid = pwd.getpwnam(OWNER).pw_uid
    for name, target in (("key-link", home / "secret-key.txt"), ("home-link", home)):
        (artifacts / name).symlink_to(target)
        os.lchown(artifacts / name, uid, -1)
    return run_dir.name


# MLflow 2.22 only: 3.17 itself refuses artifact paths whose real path leaves the run's artifact folder.
@pytest.mark.parametrize("major", ["2"])
def test_with_the_gates_checks_off_the_kernel_still_refuses_planted_symlinks(launch, site_config, home, major):
    store = make_store("file", major, OWNER, name="-symlink-kernel")
    run_id = planted_links(store, home)
    client = session(launch, site_config, store, major, GATE_CHECKS_OFF)
    # The store's own artifacts are still served: the gate's checks are off, the kernel allows the store.
    status, _, body = client.request("GET", "/get-artifact?" + urlencode({"run_uuid": run_id, "path": "notes.txt"}))
    assert status == 200 and body.startswith(b"Notes for run-"), (status, body[:200])
    status, _, body = client.request("GET", "/get-artifact?" + urlencode({"run_uuid": run_id, "path": "key-link"}))
    assert SECRET_TEXT.encode() not in body, "the owner's key was served through a planted symlink"
    assert status != 200 and b"artifact_roots" not in body, (status, body[:300])  # MLflow failed, not the gate
    status, _, body = client.request("POST", "/ajax-api/2.0/mlflow/upload-artifact?" + urlencode(
        {"run_uuid": run_id, "path": "home-link/.bash_logout"}), b"echo owned\n",
        {"Content-Type": "application/octet-stream"})
    assert status != 200, (status, body[:300])
    assert not (home / ".bash_logout").exists() or b"owned" not in (home / ".bash_logout").read_bytes()
    assert_confined(client)
