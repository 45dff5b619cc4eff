"""HTTP requests to a session as they arrive from OOD's proxy, for tests without a browser.

Requests go straight to the node's port with the headers the proxy adds: Host is
`<node>:<port>`, or the portal's name on a Dex site (ProxyPreserveHost On), and
the browser's Origin is the portal, which is not localhost.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

from ood_mlflow.session import public_prefix

PORTAL = "ondemand.test:8443"


class SessionClient:
    def __init__(self, conn_info: dict, dex: bool = False):
        self.info = conn_info
        host = PORTAL if dex else f"{conn_info['host']}:{conn_info['port']}"
        self.headers = {"Host": host, "X-Forwarded-Host": PORTAL, "X-Forwarded-Proto": "https",
                        "Origin": f"https://{PORTAL}"}
        self.cookie = ""

    @property
    def prefix(self) -> str:
        """The path the backend sees: the app's own rule (session.public_prefix)."""
        return public_prefix(self.info["mlflow_proxy"], self.info["host"], self.info["port"])

    def request(self, method, path, body=None, headers=None):
        all_headers = dict(self.headers, **({"Cookie": self.cookie} if self.cookie else {}))
        all_headers.update(headers or {})
        conn = http.client.HTTPConnection(self.info["host"], self.info["port"], timeout=60)
        try:
            conn.request(method, self.prefix + path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def login(self) -> dict:
        """POST the secret as the Connect button does; keeps the cookie; returns the response headers."""
        status, headers, _ = self.request("POST", "/login", urlencode({"password": self.info["password"]}),
                                          {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303, f"login answered {status}"
        self.cookie = headers["Set-Cookie"].split(";")[0]
        return headers

    def api(self, method, endpoint, payload=None):
        """An ajax-api call as the UI makes it; returns (status, decoded JSON or text)."""
        body = json.dumps(payload) if payload is not None else None
        status, _, raw = self.request(method, "/ajax-api/2.0/mlflow/" + endpoint, body,
                                      {"Content-Type": "application/json"} if body else {})
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def experiment_id(self, name="demo-classifier") -> str:
        status, found = self.api("GET", "experiments/search?max_results=50")
        assert status == 200, found
        return next(e["experiment_id"] for e in found["experiments"] if e["name"] == name)

    def run_names(self, name="demo-classifier") -> list:
        status, found = self.api("POST", "runs/search", {"experiment_ids": [self.experiment_id(name)],
                                                          "max_results": 1000})
        assert status == 200, found
        return sorted(r["info"]["run_name"] for r in found.get("runs", []))
