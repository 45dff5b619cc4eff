"""The session belongs to its owner: through the portal and on the node.

One session, reached through two OOD-like proxies, one logged in as the owner
and one as another portal user (OOD's proxy sets X-Forwarded-User to the portal
user), and directly from another address of the node. The site trusts only the
address its proxies connect from (trusted_proxies).
"""

from __future__ import annotations

import http.client
from urllib.parse import urlencode

import pytest

from devportal.apache import OodApache
from devportal.ports import free_port
from devportal.testbed import OTHER, OWNER

PROXY_ADDRESS = "127.0.0.1"  # where these test proxies connect from; 127.0.0.2 is "elsewhere"


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    with OodApache(tmp_path_factory.mktemp("owner"), free_port(), remote_user=OWNER) as mine, \
            OodApache(tmp_path_factory.mktemp("other"), free_port(), remote_user=OTHER) as theirs:
        yield mine, theirs


def through(proxy, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict({"Host": proxy.host_header}, **(headers or {})))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def login(proxy, base, password, extra=None):
    headers = {"Origin": proxy.origin, "Content-Type": "application/x-www-form-urlencoded"}
    return through(proxy, "POST", base + "/login", dict(headers, **(extra or {})), urlencode({"password": password}))


def direct(port, path, headers, source="127.0.0.2", method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Set-Cookie", "")
    finally:
        conn.close()


def test_only_the_owner_through_the_trusted_portal(launch, site_config, stores, proxies):
    mine, theirs = proxies
    env = site_config("3", trusted_proxies=[PROXY_ADDRESS])
    info = launch({"mlflow_tracking_uri": stores("sqlite"), "bc_num_hours": "2"}, env).wait_running(timeout=150)
    base = f"/rnode/{info['host']}/{info['port']}"

    status, headers, _ = login(mine, base, info["password"])
    assert status == 303, "the owner could not log in through the portal"
    cookie = headers["Set-Cookie"]
    assert f"; Path={base};" in cookie and cookie.count("Path=") == 1, cookie
    # The gate names that path itself: what it answers the portal's proxy, before any rewriting.
    upstream = {"Host": f"{info['host']}:{info['port']}", "X-Forwarded-User": OWNER,
                "X-Forwarded-Host": mine.host_header, "Content-Type": "application/x-www-form-urlencoded"}
    status, _, set_cookie = direct(info["port"], "/login", upstream, source=PROXY_ADDRESS, method="POST",
                                   body=urlencode({"password": info["password"]}))
    assert status == 303 and f"; Path={base};" in set_cookie, set_cookie
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 7000 < max_age <= 7200, f"the cookie must expire with the session's 2 hours: {cookie}"
    owners = cookie.split(";")[0]
    status, _, body = through(mine, "GET", base + "/ajax-api/2.0/mlflow/experiments/search?max_results=5",
                              {"Cookie": owners})
    assert status == 200 and b"demo-classifier" in body

    # Another portal user, with the owner's cookie or the secret: refused by the gate.
    status, _, body = through(theirs, "GET", base + "/ajax-api/2.0/mlflow/experiments/search", {"Cookie": owners})
    assert status == 403 and b"belongs to another portal user" in body, (status, body[:200])
    status, headers, body = login(theirs, base, info["password"])
    assert status == 403 and "Set-Cookie" not in headers, (status, body[:200])

    # Cookie tossing: a cookie of the gate's name planted by another page does not lock the owner out.
    tossed = f"{owners.split('=')[0]}=planted; {owners}"
    assert through(mine, "GET", base + "/", {"Cookie": tossed})[0] == 200
    # A request from a sibling host of the portal's site (Sec-Fetch-Site: same-site) is refused.
    status, _, body = through(mine, "GET", base + "/", {"Cookie": owners, "Sec-Fetch-Site": "same-site"})
    assert status == 403 and b"Cross-site" in body

    # Straight to the node from an address that is not the portal's, even naming the owner.
    node = {"Host": f"{info['host']}:{info['port']}", "Cookie": owners, "X-Forwarded-User": OWNER}
    status, body, _ = direct(info["port"], "/", node)
    assert status == 403 and b"only through the Open OnDemand portal" in body, (status, body[:200])
    assert direct(info["port"], "/health", {})[0] == 200
