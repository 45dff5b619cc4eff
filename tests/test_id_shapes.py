"""The gate lets IDs reach MLflow only in the shape MLflow makes them, on a live session (MLflow 3.17 and 2.22).

Attacks from the security review, through the session's own API with the owner's cookie: a directory store's
delete-traces removes `<experiment>/traces/<id>` for each ID, an absolute path or `..` included, and MLflow
2.22's directory registry takes a model named `..` for the store itself. With the gate's checks on, each is
refused before MLflow sees it (tests/test_kernel_confinement.py shows the kernel's layer with them off), and
what the UI sends still works.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from devportal.client import SessionClient
from devportal.testbed import OWNER, make_store

NOT_AN_ID = "not an ID MLflow makes"


@pytest.fixture
def victim(users):
    """A folder of the owner's, which must still be there at the end."""
    entry = pwd.getpwnam(OWNER)
    folder = Path(entry.pw_dir) / "projects-id-shapes"
    folder.mkdir(exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    for path in (folder, folder / "thesis.tex"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    yield folder
    assert (folder / "thesis.tex").read_text() == "years of work", "a folder in the owner's home was removed"
    shutil.rmtree(folder)


def session(launch, site_config, store: str, major: str) -> SessionClient:
    client = SessionClient(launch({"mlflow_tracking_uri": store}, site_config(major)).wait_running(timeout=150))
    client.login()
    return client


@pytest.mark.parametrize("major", ["3", "2"])
def test_trace_ids_that_are_paths_are_refused_by_the_gate(launch, site_config, victim, major):
    store = make_store("file", major, OWNER, name="-id-shapes")
    client = session(launch, site_config, store, major)
    experiment = client.experiment_id()
    for api in ("2.0", "3.0") if major == "3" else ("2.0",):
        for ids in ([str(victim)], ["../../../../../../../.." + str(victim)], [""]):
            for key in ("request_ids", "trace_ids", "requestIds"):
                status, _, body = client.request("POST", f"/ajax-api/{api}/mlflow/traces/delete-traces",
                                                 json.dumps({"experiment_id": experiment, key: ids}),
                                                 {"Content-Type": "application/json"})
                assert status == 403 and NOT_AN_ID in body.decode(), (api, key, ids, status, body[:300])
    # What the UI sends passes: an ID of MLflow's shape (no such trace: nothing deleted).
    status, answer = client.api("POST", "traces/delete-traces", {"experiment_id": experiment,
                                                                  "request_ids": ["0123456789abcdef" * 2]})
    assert status == 200, answer
    assert (Path(store) / experiment).is_dir()


def test_starting_a_trace_is_not_offered(launch, site_config, victim):
    store = make_store("file", "3", OWNER, name="-id-shapes-start")
    client = session(launch, site_config, store, "3")
    trace = {"trace": {"trace_info": {
        "trace_id": str(victim / "planted"), "request_time": "2026-01-01T00:00:00Z", "state": "OK",
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": client.experiment_id()}}}}}
    status, _, body = client.request("POST", "/ajax-api/3.0/mlflow/traces", json.dumps(trace),
                                     {"Content-Type": "application/json"})
    assert status == 403 and b"switched off in Open OnDemand sessions" in body, (status, body[:300])
    assert not (victim / "planted").exists()


@pytest.mark.parametrize("major", ["2", "3"])
def test_a_registered_model_named_like_a_folder_removes_nothing(launch, site_config, major):
    store = make_store("file", major, OWNER, name="-id-shapes-registry")
    client = session(launch, site_config, store, major)
    for name in ("..", "."):  # MLflow 2.22's directory registry: the store itself, the registry's folder
        status, _, body = client.request("DELETE", "/ajax-api/2.0/mlflow/registered-models/delete",
                                         json.dumps({"name": name}), {"Content-Type": "application/json"})
        assert status == 403 and b"registered model" in body, (name, status, body[:300])
        assert Path(store, client.experiment_id()).is_dir(), f"deleting the model {name!r} removed the store"
    status, made = client.api("POST", "registered-models/create", {"name": "kept-and-removed"})
    assert status == 200, made
    status, _, body = client.request("DELETE", "/ajax-api/2.0/mlflow/registered-models/delete",
                                     json.dumps({"name": "kept-and-removed"}), {"Content-Type": "application/json"})
    assert status == 200, body[:300]
