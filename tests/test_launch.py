"""Launch a session as the portal would and talk to it as the browser and others would.

The staged files run in the emulation of OOD's basic job script (bash, clean
environment, as the session's owner) against real MLflow; requests carry the
Host and Origin the OOD proxy produces: `<node>:<port>` or the portal's name
(Dex), and the portal's origin, which is not localhost.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

import pytest

from tests.portal.jobs import output_lines

PORTAL = "ondemand.test:8443"


def request(conn_info, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection(conn_info["host"], conn_info["port"], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def prefix_of(conn_info) -> str:
    """The path the backend sees: /rnode strips the prefix, /node keeps it."""
    return f"/node/{conn_info['host']}/{conn_info['port']}" if conn_info["mlflow_proxy"] == "node" else ""


def proxy_headers(conn_info, dex: bool) -> dict:
    host = PORTAL if dex else f"{conn_info['host']}:{conn_info['port']}"
    return {"Host": host, "X-Forwarded-Host": PORTAL, "X-Forwarded-Proto": "https",
            "Origin": f"https://{PORTAL}"}


def login(conn_info, headers) -> str:
    status, response_headers, _ = request(
        conn_info, "POST", prefix_of(conn_info) + "/login",
        dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"}),
        urlencode({"password": conn_info["password"]}))
    assert status == 303, f"login answered {status}"
    cookie = response_headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie, cookie
    assert response_headers["Location"] == prefix_of(conn_info) + "/"
    return cookie.split(";")[0]


def experiment_id(conn_info, headers, cookie, name="demo-classifier") -> str:
    status, _, body = request(conn_info, "GET", prefix_of(conn_info) + "/ajax-api/2.0/mlflow/experiments/search?max_results=50",
                              dict(headers, Cookie=cookie))
    assert status == 200, body[:300]
    return next(e["experiment_id"] for e in json.loads(body)["experiments"] if e["name"] == name)


@pytest.mark.parametrize("kind,major,proxy,dex", [
    ("sqlite", "3", "rnode", False),
    ("file", "3", "node", True),
    ("sqlite", "2", "rnode", False),
    ("file", "2", "node", False),
])
def test_session_serves_owner_and_refuses_everyone_else(launch, site_config, stores, kind, major, proxy, dex):
    job = launch({"mlflow_tracking_uri": stores(kind, major)}, site_config(major, proxy=proxy))
    conn_info = job.wait_running(timeout=150)
    assert conn_info["mlflow_proxy"] == proxy
    assert len(str(conn_info["password"])) >= 32
    base = prefix_of(conn_info)
    headers = proxy_headers(conn_info, dex)

    status, _, body = request(conn_info, "GET", base + "/", headers)
    assert status == 401, "the UI answered without login"
    status, _, _ = request(conn_info, "POST", base + "/ajax-api/2.0/mlflow/runs/search",
                           dict(headers, **{"Content-Type": "application/json"}), '{"experiment_ids":["1"]}')
    assert status in (401, 403)
    status, _, body = request(conn_info, "GET", base + "/health", {"Host": headers["Host"]})
    assert (status, body) == (200, b"OK")

    cookie = login(conn_info, headers)
    status, _, body = request(conn_info, "GET", base + "/", dict(headers, Cookie=cookie))
    assert status == 200 and b"<html" in body.lower()
    search = json.dumps({"experiment_ids": [experiment_id(conn_info, headers, cookie)], "max_results": 100})
    status, _, body = request(conn_info, "POST", base + "/ajax-api/2.0/mlflow/runs/search",
                              dict(headers, Cookie=cookie, **{"Content-Type": "application/json"}), search)
    assert status == 200, body[:300]
    runs = json.loads(body)["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == ["run-00000", "run-00001", "run-00002"]

    evil = dict(headers, Cookie=cookie, Origin="https://evil.example", **{"Content-Type": "application/json"})
    status, _, _ = request(conn_info, "POST", base + "/ajax-api/2.0/mlflow/experiments/create", evil,
                           '{"name":"planted"}')
    assert status == 403, "a cross-site POST was not refused"
    status, _, _ = request(conn_info, "GET", base + "/", dict(headers, Cookie=cookie.split("=")[0] + "=forged"))
    assert status == 403

    session = job.session
    assert conn_info["password"] not in session.output(), "the secret leaked into output.log"
    assert conn_info["password"] not in (session.staged_root / "job_script_content.sh").read_text()
    assert session.connection_file.stat().st_mode & 0o777 == 0o600
    assert not output_lines(session, "ERROR:")
