"""The login gate's decisions, request by request."""

import pytest

from ood_mlflow.gate_policy import COOKIE_NAME, GatePolicy, cookie_token, origin_allowed, request_cookie

SECRET = "s" * 20 + "E" * 20
NODE = "c1234.cluster:5001"
PORTAL = "ondemand.example.org"


def policy(prefix=""):
    return GatePolicy(secret=SECRET, port=5001, prefix=prefix)


def logged_in(**extra):
    return dict({"host": NODE, "cookie": f"other=1; {COOKIE_NAME}={cookie_token(SECRET)}"}, **extra)


def test_short_secret_is_refused():
    with pytest.raises(ValueError):
        GatePolicy(secret="short", port=1)


@pytest.mark.parametrize("prefix", ["", "/node/c1234.cluster/5001"])
def test_health_is_open_and_says_nothing(prefix):
    decision = policy(prefix).decide("GET", prefix + "/health", {})
    assert (decision.action, decision.status, decision.body) == ("health", 200, "OK")


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/version"), ("POST", "/ajax-api/2.0/mlflow/runs/search"),
    ("GET", "/static-files/static/js/main.js"), ("GET", "/login"), ("POST", "/health"),
    ("GET", "/api/2.0/mlflow/experiments/search"),
])
def test_everything_else_needs_the_cookie(method, path):
    decision = policy().decide(method, path, {"host": NODE})
    assert (decision.action, decision.status) == ("respond", 401)
    assert "Connect to MLflow" in decision.body


def test_wrong_cookie_is_forbidden():
    decision = policy().decide("GET", "/", {"host": NODE, "cookie": f"{COOKIE_NAME}=guess"})
    assert (decision.action, decision.status) == ("respond", 403)


def test_right_cookie_passes_as_a_local_request():
    decision = policy().decide("POST", "/ajax-api/2.0/mlflow/runs/search",
                               logged_in(origin=f"https://{PORTAL}", **{"x-forwarded-host": PORTAL}))
    assert decision.action == "pass"
    assert decision.set_request_headers == {"host": "localhost:5001"}
    assert decision.drop_request_headers == ("origin",)


def test_login_sets_a_strict_cookie_and_redirects_home():
    gate = policy("/node/c1234.cluster/5001")
    assert gate.decide("POST", "/node/c1234.cluster/5001/login", {"host": NODE}).action == "login"
    decision = gate.login(b"password=" + SECRET.encode(), {"x-forwarded-proto": "https"})
    headers = dict(decision.headers)
    assert decision.status == 303
    assert headers["Location"] == "/node/c1234.cluster/5001/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}={cookie_token(SECRET)};")
    for attribute in ("Path=/node/c1234.cluster/5001", "HttpOnly", "SameSite=Strict", "Secure"):
        assert attribute in cookie
    assert SECRET not in cookie


def test_cookie_is_not_secure_over_plain_http():
    cookie = dict(policy().login(b"password=" + SECRET.encode(), {}).headers)["Set-Cookie"]
    assert "Secure" not in cookie and "Path=/;" in cookie


@pytest.mark.parametrize("body", [b"", b"password=", b"password=" + SECRET[:-1].encode(),
                                  b"pass=" + SECRET.encode(), b"\xff\xfe", b"password=" + SECRET.encode() + b"x"])
def test_wrong_login_is_forbidden(body):
    decision = policy().login(body, {})
    assert decision.status == 403 and not any(k == "Set-Cookie" for k, _ in decision.headers)


@pytest.mark.parametrize("headers,allowed", [
    ({"host": NODE}, True),
    ({"host": NODE, "origin": f"https://{PORTAL}", "x-forwarded-host": PORTAL}, True),
    ({"host": PORTAL, "origin": f"https://{PORTAL}"}, True),  # Dex: ProxyPreserveHost On
    ({"host": NODE, "origin": f"http://{NODE}"}, True),
    ({"host": NODE, "origin": "https://evil.example", "x-forwarded-host": PORTAL}, False),
    ({"host": NODE, "origin": f"https://{PORTAL}.evil.example", "x-forwarded-host": PORTAL}, False),
    ({"host": NODE, "origin": "null"}, False),
    ({"host": NODE, "sec-fetch-site": "cross-site"}, False),
])
def test_origin_must_be_the_portal_or_the_node(headers, allowed):
    assert origin_allowed(headers) is allowed


def test_cross_site_is_refused_even_with_the_cookie():
    decision = policy().decide("POST", "/ajax-api/2.0/mlflow/experiments/create",
                               logged_in(origin="https://evil.example", **{"x-forwarded-host": PORTAL}))
    assert decision.status == 403


def test_cookie_parsing():
    assert request_cookie("a=1; b=2", "b") == "2"
    assert request_cookie("a=1; ab=2", "b") is None
    assert request_cookie("", "b") is None


def test_read_only_session_refuses_changes_with_a_message():
    gate = GatePolicy(secret=SECRET, port=5001, read_only=True)
    for method, path in [("POST", "/ajax-api/2.0/mlflow/experiments/update"),
                         ("POST", "/ajax-api/2.0/mlflow/runs/delete"), ("DELETE", "/ajax-api/2.0/mlflow/x"),
                         ("PATCH", "/ajax-api/2.0/mlflow/registered-models/update")]:
        decision = gate.decide(method, path, logged_in())
        assert decision.status == 403 and '"error_code": "PERMISSION_DENIED"' in decision.body
        assert "read-only" in decision.body
    for method, path in [("GET", "/"), ("POST", "/ajax-api/2.0/mlflow/runs/search"), ("POST", "/graphql"),
                         ("POST", "/ajax-api/2.0/mlflow/logged-models/search")]:
        assert gate.decide(method, path, logged_in()).action == "pass"
    assert policy().decide("POST", "/ajax-api/2.0/mlflow/experiments/update", logged_in()).action == "pass"
