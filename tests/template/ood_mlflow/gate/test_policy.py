"""The login gate's decisions, request by request."""

import ipaddress
import time

import pytest

from ood_mlflow.gate.policy import (
    COOKIE_NAME,
    GatePolicy,
    cookie_token,
    origin_allowed,
    parse_networks,
    request_cookies,
)

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
    assert request_cookies("a=1; b=2", "b") == ["2"]
    assert request_cookies("a=1; ab=2", "b") == []
    assert request_cookies("b=1; a=0; b=2", "b") == ["1", "2"]
    assert request_cookies("", "b") == []


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


OWNER = "alice"


def owned(**extra):
    fields = dict(secret=SECRET, port=5001, owner=OWNER, ends_at=int(time.time()) + 3600)
    fields.update(extra)
    return GatePolicy(**fields)


def owners_cookie(gate):
    return f"{COOKIE_NAME}={cookie_token(SECRET, OWNER, gate.ends_at)}"


def test_another_portal_user_is_refused_with_a_valid_cookie_and_at_login():
    gate = owned()
    headers = {"host": NODE, "cookie": owners_cookie(gate), "x-forwarded-user": "bob"}
    assert gate.decide("GET", "/", headers).status == 403
    assert gate.decide("POST", "/login", headers).status == 403
    assert gate.decide("GET", "/", dict(headers, **{"x-forwarded-user": OWNER})).action == "pass"
    assert gate.decide("GET", "/", dict(headers, **{"x-forwarded-user": ""})).status == 403


def test_cookie_is_bound_to_the_owner_and_the_session_end():
    gate = owned()
    assert gate.decide("GET", "/", {"host": NODE, "cookie": owners_cookie(gate)}).action == "pass"
    for cookie in (cookie_token(SECRET), cookie_token(SECRET, "bob", gate.ends_at),
                   cookie_token(SECRET, OWNER, gate.ends_at + 1)):
        assert gate.decide("GET", "/", {"host": NODE, "cookie": f"{COOKIE_NAME}={cookie}"}).status == 403


def test_cookie_expires_with_the_session():
    gate = owned(ends_at=int(time.time()) + 7200)
    cookie = dict(gate.login(b"password=" + SECRET.encode(), {}).headers)["Set-Cookie"]
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 7190 <= max_age <= 7200


def test_every_cookie_of_the_gates_name_is_tried():
    gate = owned()
    tossed = f"{COOKIE_NAME}=planted-by-another-page; {owners_cookie(gate)}"
    assert gate.decide("GET", "/", {"host": NODE, "cookie": tossed}).action == "pass"
    both_wrong = f"{COOKIE_NAME}=planted; {COOKIE_NAME}=also-planted"
    assert gate.decide("GET", "/", {"host": NODE, "cookie": both_wrong}).status == 403


@pytest.mark.parametrize("site,allowed", [("same-origin", True), ("none", True), ("same-site", False),
                                          ("cross-site", False), ("SAME-SITE", False)])
def test_only_same_origin_fetches_pass(site, allowed):
    gate = owned()
    decision = gate.decide("GET", "/", {"host": NODE, "cookie": owners_cookie(gate), "sec-fetch-site": site})
    assert (decision.action == "pass") is allowed


PROXY = ("10.1.2.3", 40000)


def test_trusted_proxies_keep_out_direct_requests():
    gate = owned(trusted_proxies=parse_networks(["10.1.2.0/28", "2001:db8::1"]))
    cookie = owners_cookie(gate)
    through_portal = {"host": NODE, "cookie": cookie, "x-forwarded-user": OWNER}
    assert gate.decide("GET", "/", through_portal, client=PROXY).action == "pass"
    assert gate.decide("GET", "/", through_portal, client=("::ffff:10.1.2.3", 1)).action == "pass"
    assert gate.decide("GET", "/", {"host": NODE, "cookie": cookie}, client=PROXY).status == 403
    assert gate.decide("GET", "/", through_portal, client=("10.9.9.9", 1)).status == 403
    assert gate.decide("POST", "/login", through_portal, client=("10.9.9.9", 1)).status == 403
    # The readiness check: a local connection of the owner's own process.
    local = gate.decide("GET", "/", {"host": NODE, "cookie": cookie}, client=("127.0.0.1", 5), local_owner=lambda: True)
    assert local.action == "pass"
    assert gate.decide("GET", "/health", {}, client=("10.9.9.9", 1)).action == "health"


def test_untrusted_proxies_setting_is_refused():
    with pytest.raises(ValueError):
        parse_networks(["portal.example.org"])
    assert parse_networks(["10.0.0.1"]) == (ipaddress.ip_network("10.0.0.1/32"),)


@pytest.mark.parametrize("method,path", [
    ("POST", "/ajax-api/3.0/mlflow/assistant/message"), ("POST", "/gateway/openai/v1/chat/completions"),
    ("GET", "/ajax-api/3.0/mlflow/gateway/secrets/list"), ("POST", "/ajax-api/2.0/mlflow/webhooks"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/x"), ("POST", "/ajax-api/3.0/mlflow/scorer/invoke"),
    ("POST", "/ajax-api/2.0/mlflow/artifacts/presigned-upload-url"), ("POST", "/ajax-api/3.0/jobs/"),
    ("GET", "/ajax-api//2.0//mlflow-artifacts/artifacts"), ("GET", "/ajax-api/2.0/mlflow/some-new-artifact-route"),
])
def test_routes_that_reach_beyond_the_store_are_never_offered(method, path):
    gate = owned()
    decision = gate.decide(method, path, {"host": NODE, "cookie": owners_cookie(gate)})
    assert decision.status == 403 and "PERMISSION_DENIED" in decision.body


@pytest.mark.parametrize("prefix", ["", "/node/c1234.cluster/5001"])
def test_artifact_routes_pass_only_through_the_confinement_check(prefix):
    gate = owned(prefix=prefix)
    headers = {"host": NODE, "cookie": owners_cookie(gate)}
    for method, path, owner in [("GET", "/get-artifact", "run"), ("GET", "/ajax-api/2.0/mlflow/artifacts/list", "run"),
                                ("POST", "/ajax-api/2.0/mlflow/upload-artifact", "run"),
                                ("GET", "/model-versions/get-artifact", "model-version"),
                                ("GET", "/ajax-api/3.0/mlflow/get-trace-artifact", "trace"),
                                ("GET", "/ajax-api/2.0/mlflow/logged-models/m-" + "0" * 32 + "/artifacts/files",
                                 "logged-model"),
                                ("GET", "//get-artifact", "run")]:
        decision = gate.decide(method, prefix + path, headers)
        assert decision.action == "pass" and decision.artifact and decision.artifact.owner == owner, path
    decision = gate.decide("POST", prefix + "/ajax-api/2.0/mlflow/experiments/create", headers)
    assert decision.inspect == "json"


def test_read_only_is_an_allowlist_not_a_suffix_guess():
    gate = owned(read_only=True)
    headers = {"host": NODE, "cookie": owners_cookie(gate)}
    for method, path in [("DELETE", "/ajax-api/2.0/mlflow/experiments/search"),
                         ("POST", "/ajax-api/2.0/mlflow/anything/search"),
                         ("POST", "/ajax-api/2.0/mlflow/upload-artifact")]:
        assert gate.decide(method, path, headers).status == 403, (method, path)
    assert gate.decide("GET", "/get-artifact", headers).action == "pass"


def test_what_the_ui_reads_on_every_page_still_answers():
    gate = owned(read_only=True)
    headers = {"host": NODE, "cookie": owners_cookie(gate)}
    assert gate.decide("GET", "/ajax-api/3.0/mlflow/assistant/config", headers).action == "pass"
    assert gate.decide("GET", "/ajax-api/3.0/mlflow/assistant/providers", headers).action == "pass"
    assert gate.decide("GET", "/ajax-api/3.0/mlflow/assistant/providers/claude_code/health", headers).status == 403
    # The 2.x UI lists gateway endpoints: the gate answers as MLflow does with no gateway, calling out to nothing.
    listed = gate.decide("GET", "/ajax-api/2.0/mlflow/gateway-proxy", headers, "gateway_path=api/2.0/endpoints/")
    assert (listed.action, listed.status, listed.body) == ("respond", 200, '{"endpoints": []}')
    assert owned().decide("POST", "/ajax-api/2.0/mlflow/gateway-proxy", headers).status == 403


def test_the_ui_index_page_gets_the_sites_first_view():
    gate = owned(default_view="training")
    headers = {"host": NODE, "cookie": owners_cookie(gate), "if-none-match": '"etag"'}
    decision = gate.decide("GET", "/", headers)
    assert decision.action == "pass" and decision.default_view == "training"
    assert "if-none-match" in decision.drop_request_headers, "a 304 would skip the rewrite"
    assert not gate.decide("GET", "/static-files/static/js/main.js", headers).default_view
    assert not owned().decide("GET", "/", headers).default_view


HEX = "0123456789abcdef" * 2


@pytest.mark.parametrize("method,path", [
    ("POST", "/ajax-api/2.0/mlflow/runs/log-batch"), ("POST", "/ajax-api/2.0/mlflow/runs/outputs"),
    ("POST", "/ajax-api/3.0/mlflow/traces"), ("POST", "/ajax-api/3.0/mlflow/scorers/register"),
    ("PUT", "/ajax-api/3.0/mlflow/scorers/online-config"), ("POST", "/ajax-api/3.0/mlflow/workspaces"),
    ("POST", "/ajax-api/2.0/mlflow/runs/create-promptlab-run"), ("POST", "/ajax-api/3.0/mlflow/demo/generate"),
    ("DELETE", "/ajax-api/3.0/mlflow/mcp-servers/x"), ("POST", "/v1/traces"),
    ("POST", "/ajax-api/2.0/mlflow/registered-models/rename"), ("DELETE", "/ajax-api/2.0/mlflow/runs/search"),
])
def test_read_write_sessions_refuse_what_the_ui_does_not_send(method, path):
    gate = owned()
    decision = gate.decide(method, path, {"host": NODE, "cookie": owners_cookie(gate)})
    assert decision.status == 403 and '"error_code": "PERMISSION_DENIED"' in decision.body, path
    assert "switched off in Open OnDemand sessions" in decision.body


@pytest.mark.parametrize("gate", [owned(), owned(read_only=True), owned(checks=False)],
                         ids=["read-write", "read-only", "checks-off"])
@pytest.mark.parametrize("path", ["/ajax-api/3.0/mlflow/demo/generate", "/ajax-api/3.0/mlflow/demo/delete"])
def test_start_demo_is_refused_and_explained_whatever_the_access(gate, path):
    """MLflow 3.x's Start Demo writes sample experiments into the store, which may be a project's."""
    decision = gate.decide("POST", path, {"host": NODE, "cookie": owners_cookie(gate)})
    assert decision.status == 403 and '"error_code": "PERMISSION_DENIED"' in decision.body, path
    assert "Start Demo is switched off in Open OnDemand sessions" in decision.body
    assert "which may be your project's" in decision.body


@pytest.mark.parametrize("method,path", [
    ("POST", "/ajax-api/2.0/mlflow/experiments/create"), ("POST", "/ajax-api/2.0/mlflow/runs/set-tag"),
    ("POST", "/ajax-api/2.0/mlflow/traces/delete-traces"), ("PATCH", f"/ajax-api/3.0/mlflow/traces/tr-{HEX}/tags"),
    ("DELETE", "/ajax-api/2.0/mlflow/registered-models/alias"),
    ("PATCH", f"/ajax-api/2.0/mlflow/logged-models/m-{HEX}/tags"),
    ("POST", f"/ajax-api/3.0/mlflow/traces/tr-{HEX}/assessments"), ("POST", "/ajax-api/3.0/mlflow/datasets/create"),
])
def test_read_write_sessions_pass_the_uis_writes_for_their_body_to_be_checked(method, path):
    gate = owned()
    decision = gate.decide(method, path, {"host": NODE, "cookie": owners_cookie(gate)})
    assert (decision.action, decision.inspect, decision.route) == ("pass", "json", path)


@pytest.mark.parametrize("path,query", [
    ("/get-artifact", "run_uuid=artifacts&path=x"), ("/ajax-api/2.0/mlflow/runs/get", "run_id=../../x"),
    ("/ajax-api/2.0/mlflow/traces/..%2F..%2Fhome/info", ""), ("/ajax-api/2.0/mlflow/traces/../info", ""),
    ("/ajax-api/3.0/mlflow/traces/get", "trace_id=/home/owner"),
    ("/ajax-api/2.0/mlflow/logged-models/m-1/artifacts/files", "artifact_file_path=x"),
    ("/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval", f"run_ids={HEX}&run_ids=..&metric_key=m"),
])
def test_ids_in_the_route_and_query_must_have_mlflows_shape(path, query):
    for read_only in (False, True):
        gate = owned(read_only=read_only)
        decision = gate.decide("GET", path, {"host": NODE, "cookie": owners_cookie(gate)}, query)
        assert decision.status == 403 and "not an ID MLflow makes" in decision.body, (path, read_only)
    gate = owned()
    assert gate.decide("GET", "/ajax-api/3.0/mlflow/traces/get", {"host": NODE, "cookie": owners_cookie(gate)},
                       f"trace_id=tr-{HEX}").action == "pass", "a literal route must not be read as <trace_id>"


def test_a_get_that_sends_a_body_has_it_checked():
    gate = owned(read_only=True)
    headers = {"host": NODE, "cookie": owners_cookie(gate), "content-length": "40"}
    assert gate.decide("GET", "/ajax-api/2.0/mlflow/runs/get", headers).inspect == "json"
    assert not gate.decide("GET", "/ajax-api/2.0/mlflow/runs/get", dict(headers, **{"content-length": "0"})).inspect


def test_the_test_only_switch_lifts_the_write_allowlist_and_id_checks_only():
    gate = owned(checks=False)
    headers = {"host": NODE, "cookie": owners_cookie(gate)}
    assert gate.decide("POST", "/ajax-api/3.0/mlflow/traces", headers).action == "pass"
    assert gate.decide("GET", "/ajax-api/2.0/mlflow/runs/get", headers, "run_id=..").action == "pass"
    assert gate.decide("POST", "/ajax-api/3.0/mlflow/assistant/message", headers).status == 403
    assert owned(checks=False, read_only=True).decide("POST", "/ajax-api/2.0/mlflow/runs/delete", headers).status == 403


RNODE = "/rnode/c1234.cluster/5001"


def test_the_cookie_path_is_the_one_the_browser_sees():
    gate = owned(proxy_path=RNODE)
    body = b"password=" + SECRET.encode()
    through_portal = dict(gate.login(body, {"x-forwarded-host": PORTAL, "x-forwarded-user": OWNER}).headers)
    assert f"Path={RNODE};" in through_portal["Set-Cookie"]
    assert f"Path={RNODE};" in dict(gate.login(body, {"x-forwarded-user": OWNER}).headers)["Set-Cookie"]
    # Straight to the node (the readiness check, an SSH tunnel): MLflow serves at the root behind /rnode.
    assert "Path=/;" in dict(gate.login(body, {}).headers)["Set-Cookie"]
    node = owned(prefix="/node/c1234.cluster/5001", proxy_path="/node/c1234.cluster/5001")
    for headers in ({}, {"x-forwarded-host": PORTAL}):
        assert "Path=/node/c1234.cluster/5001;" in dict(node.login(body, headers).headers)["Set-Cookie"]


@pytest.mark.parametrize("read_only", [False, True])
def test_a_get_mlflow_does_not_route_is_answered_as_mlflow_does(read_only):
    gate = owned(read_only=read_only)
    decision = gate.decide("GET", "/ajax-api/2.0/mlflow/users/current", {"host": NODE, "cookie": owners_cookie(gate)})
    assert (decision.action, decision.status) == ("respond", 404), "the 3.x UI asks for it on every page"
    assert '"error_code": "ENDPOINT_NOT_FOUND"' in decision.body


@pytest.mark.parametrize("dest,previews,action", [
    ("empty", False, "respond"),  # MLflow 2.x's UI fetching a PDF for its pdf.js 2.1 viewer
    ("document", False, "pass"),  # a download: the browser's own viewer or the disk
    ("", False, "pass"),  # a client outside the browser
    ("empty", True, "pass"),  # MLflow 3.x
])
def test_pdf_previews_are_refused_where_the_ui_viewer_is_unsafe(dest, previews, action):
    gate = GatePolicy(secret=SECRET, port=5001, pdf_previews=previews)
    headers = logged_in(**({"sec-fetch-dest": dest} if dest else {}))
    for path in ("Report.PDF", "plots/loss.pdf"):
        decision = gate.decide("GET", "/get-artifact", headers, f"run_uuid={'a' * 32}&path={path}")
        assert decision.action == action, (path, decision)
        if action == "respond":
            assert decision.status == 403 and "CVE-2024-4367" in decision.body and "Download" in decision.body
    assert gate.decide("GET", "/get-artifact", headers, f"run_uuid={'a' * 32}&path=notes.txt").action == "pass"
