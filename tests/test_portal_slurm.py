"""A session submitted through real Slurm (--export=NONE, OOD's sbatch flags) and
reached through the OOD-like Apache proxy; another cluster user is kept out."""

from __future__ import annotations

import http.client
import subprocess
from urllib.parse import urlencode

import pytest

from devportal.apache import OodApache
from devportal.dashboard import make_docroot
from devportal.ports import free_port
from devportal.testbed import OTHER


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with OodApache(tmp_path_factory.mktemp("apache"), free_port(), docroot=make_docroot()) as apache:
        yield apache


def via_portal(portal, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict({"Host": portal.host_header}, **(headers or {})))
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def run_as(user, argv):
    return subprocess.run(["runuser", "-u", user, "--"] + argv, capture_output=True, text=True, timeout=60)


@pytest.mark.slurm
def test_slurm_session_through_the_portal_and_kept_from_others(launch, site_config, stores, portal):
    job = launch({"mlflow_tracking_uri": stores("sqlite"), "bc_account": "project_2001234",
                  "bc_queue": "interactive", "bc_num_hours": "1"}, site_config("3"), runner="slurm")
    info = job.wait_running(timeout=180)
    base = f"/rnode/{info['host']}/{info['port']}"
    session = job.session

    # The job ran under Slurm with the resources the form asked for.
    shown = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True).stdout
    assert "Account=project_2001234" in shown and "Partition=interactive" in shown and "TimeLimit=01:00:00" in shown

    status, _, _ = via_portal(portal, "GET", base + "/")
    assert status == 401
    status, headers, _ = via_portal(portal, "POST", base + "/login",
                                    {"Origin": portal.origin, "Content-Type": "application/x-www-form-urlencoded"},
                                    urlencode({"password": info["password"]}))
    headers = dict(headers)
    assert status == 303 and headers["Location"] == base + "/", "the proxy must rewrite the redirect into /rnode"
    assert f"Path={base}" in headers["Set-Cookie"], headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, body = via_portal(portal, "GET", base + "/", {"Cookie": cookie})
    assert status == 200 and b"<html" in body.lower()
    status, _, body = via_portal(portal, "POST", base + "/ajax-api/2.0/mlflow/runs/search",
                                 {"Cookie": cookie, "Origin": portal.origin, "Content-Type": "application/json"},
                                 '{"experiment_ids":["1"]}')
    assert status == 200 and b"run-00000" in body

    # Another user of the cluster: no way in, directly or through the portal, and no secret to read.
    for url in (f"http://{info['host']}:{info['port']}/", f"http://127.0.0.1:{portal.port}{base}/"):
        got = run_as(OTHER, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             "-H", f"Host: {portal.host_header}" if "rnode" in url else "X-Nothing: 1", url])
        assert got.stdout in ("401", "403"), f"{OTHER} got {got.stdout} from {url}"
    for name in ("connection.yml", ".gate-secret"):
        got = run_as(OTHER, ["cat", str(session.staged_root / name)])
        assert got.returncode != 0 and info["password"] not in got.stdout, f"{OTHER} could read {name}"
    got = run_as(OTHER, ["ps", "-eo", "args"])
    assert info["password"] not in got.stdout, "the secret is visible in the process list"
