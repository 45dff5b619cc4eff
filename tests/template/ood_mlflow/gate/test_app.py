"""The same requests through both of the gate's adapters (ASGI for MLflow 3.x, WSGI for 2.x), in front of a fake
MLflow that records what reaches it: each must answer the same, and pass MLflow the same requests.

The fake stands in for MLflow only where the adapters touch it: it answers the in-process `runs/get` the artifact
rule asks, serves an HTML index page, and sends an artifact in two pieces, so a gate that buffered it would show.
No root, no MLflow, no web server: the adapters are called as uvicorn and werkzeug call them.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest

from ood_mlflow.gate.app import AsgiGate, WsgiGate
from ood_mlflow.gate.policy import COOKIE_NAME, GatePolicy, cookie_token
from ood_mlflow.session import LOGIN_FIELD

SECRET = "k" * 40
ENDS = int(time.time()) + 3600
PORTAL_PATH = "/rnode/c1.cluster/5001"
NODE = "c1.cluster:5001"
COOKIE = f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"
ROOTS = ("/store",)
RUN_INSIDE, RUN_OUTSIDE = "a" * 32, "b" * 32
LOCATIONS = {RUN_INSIDE: "/store/0/" + RUN_INSIDE + "/artifacts", RUN_OUTSIDE: "/etc"}
PAGE = b"<!doctype html><html><head><title>MLflow</title></head><body><div id=root></div></body></html>"
ARTIFACT = (b"first piece,", b"second piece")
LIMIT = 1 << 20  # what the gate reads of a body it checks


def policy() -> GatePolicy:
    return GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS, default_view="training",
                      proxy_path=PORTAL_PATH)


@dataclass
class Reached:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes


class FakeMlflow:
    """Answers as MLflow would for what the gate asks in-process and for what it passes; keeps each request."""

    def __init__(self):
        self.reached = []

    def answer(self, path: str, query: str) -> tuple:
        """(status, headers, body pieces) for a path."""
        if path == "/ajax-api/2.0/mlflow/runs/get":
            run = parse_qs(query).get("run_id", [""])[0]
            if run not in LOCATIONS:
                return 404, [("Content-Type", "application/json")], [b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}']
            info = {"run": {"info": {"run_id": run, "artifact_uri": LOCATIONS[run]}}}
            return 200, [("Content-Type", "application/json")], [json.dumps(info).encode()]
        if path == "/":
            return 200, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE))),
                         ("ETag", '"page-1"'), ("Cache-Control", "max-age=3600")], [PAGE]
        if path == "/get-artifact":
            return 200, [("Content-Type", "text/plain")], list(ARTIFACT)
        return 200, [("Content-Type", "application/json")], [b"{}"]

    def wsgi(self, environ, start_response):
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.reached.append(Reached(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"],
                                    headers, body))
        status, out, pieces = self.answer(environ["PATH_INFO"], environ["QUERY_STRING"])
        start_response(f"{status} X", out)
        return pieces

    async def asgi(self, scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope["query_string"].decode("latin-1")
        self.reached.append(Reached(scope["method"], scope["path"], query, headers, body))
        status, out, pieces = self.answer(scope["path"], query)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out]})
        for n, piece in enumerate(pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": n < len(pieces) - 1})


@dataclass
class Answer:
    status: int
    headers: list  # (name, value) str pairs, as the adapter gave them
    pieces: list  # the body as the adapter handed it on, piece by piece
    reached: list = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)

    def header(self, name: str):
        values = [v for k, v in self.headers if k.lower() == name]
        return values[0] if values else None


def through_wsgi(method, path, headers, query="", body=b"") -> Answer:
    mlflow = FakeMlflow()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(body)) if body else "", "REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "1",
               "wsgi.input": io.BytesIO(body)}
    for name, value in headers.items():
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = value
    started = []
    pieces = list(WsgiGate(mlflow.wsgi, policy(), ROOTS)(environ, lambda s, h, e=None: started.append((s, h))))
    status, out = started[0]
    return Answer(int(status.split()[0]), list(out), pieces, mlflow.reached)


def through_asgi(method, path, headers, query="", body=b"") -> Answer:
    mlflow = FakeMlflow()
    messages = [body[:7], body[7:]]  # a body may come in several messages
    sent = []

    async def receive():
        return {"type": "http.request", "body": messages.pop(0), "more_body": bool(messages)} if messages \
            else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "client": ("10.0.0.1", 1), "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(AsgiGate(mlflow.asgi, policy(), ROOTS)(scope, receive, send))
    start, rest = sent[0], sent[1:]
    assert start["type"] == "http.response.start" and all(m["type"] == "http.response.body" for m in rest)
    out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return Answer(start["status"], out, [m.get("body", b"") for m in rest], mlflow.reached)


ADAPTERS = pytest.mark.parametrize("through", [through_wsgi, through_asgi], ids=["wsgi", "asgi"])
LOGGED_IN = {"host": NODE, "cookie": COOKIE, "sec-fetch-site": "same-origin"}
SEARCH = "/ajax-api/2.0/mlflow/experiments/search"


def error(answer: Answer) -> dict:
    assert answer.header("content-type") == "application/json"
    return json.loads(answer.body)


@ADAPTERS
def test_without_the_login_cookie_nothing_reaches_mlflow(through):
    answer = through("GET", SEARCH, {"host": NODE})
    assert answer.status == 401 and b"This MLflow session is private" in answer.body and answer.reached == []
    assert answer.header("content-type") == "text/html; charset=utf-8"
    assert answer.header("content-length") == str(len(answer.body))


@ADAPTERS
def test_a_wrong_cookie_is_refused(through):
    answer = through("GET", SEARCH, {"host": NODE, "cookie": f"{COOKIE_NAME}={'0' * 64}"})
    assert answer.status == 403 and b"does not belong to this MLflow session" in answer.body and answer.reached == []


@ADAPTERS
def test_login_through_the_portal_sets_the_cookie_on_the_portal_path(through):
    form = f"{LOGIN_FIELD}={SECRET}".encode()
    answer = through("POST", "/login", {"host": NODE, "x-forwarded-host": "ondemand.example.org",
                                        "x-forwarded-proto": "https",
                                        "content-type": "application/x-www-form-urlencoded"}, body=form)
    assert answer.status == 303 and answer.header("location") == "/" and answer.reached == []
    cookie = answer.header("set-cookie")
    assert cookie.startswith(COOKIE + f"; Path={PORTAL_PATH}; HttpOnly; SameSite=Strict; Max-Age=")
    assert cookie.endswith("; Secure") and answer.header("cache-control") == "no-store"


@ADAPTERS
def test_a_wrong_secret_gets_no_cookie(through):
    answer = through("POST", "/login", {"host": NODE}, body=f"{LOGIN_FIELD}={'x' * 40}".encode())
    assert answer.status == 403 and answer.header("set-cookie") is None


@ADAPTERS
def test_a_route_a_session_never_offers_is_refused(through):
    answer = through("POST", "/ajax-api/3.0/mlflow/assistant/chat", dict(LOGGED_IN, **{"content-type": "x"}),
                     body=b"{}")
    assert answer.status == 403 and "switched off" in error(answer)["message"] and answer.reached == []


@ADAPTERS
def test_a_passed_request_reaches_mlflow_as_a_local_one(through):
    headers = dict(LOGGED_IN, origin=f"http://{NODE}", **{"x-other": "kept"})
    answer = through("GET", SEARCH, headers, query="max_results=5")
    assert (answer.status, answer.body) == (200, b"{}")
    [reached] = answer.reached
    assert (reached.method, reached.path, reached.query) == ("GET", SEARCH, "max_results=5")
    assert reached.headers["host"] == "localhost:5001" and "origin" not in reached.headers
    assert reached.headers["x-other"] == "kept" and reached.headers["cookie"] == COOKIE


@ADAPTERS
def test_a_checked_body_reaches_mlflow_unchanged_and_a_refused_one_not_at_all(through):
    route = "/ajax-api/2.0/mlflow/traces/delete-traces"
    json_body = dict(LOGGED_IN, **{"content-type": "application/json"})
    fine = json.dumps({"experiment_id": "0", "request_ids": ["tr-" + "c" * 32]}).encode()
    answer = through("POST", route, json_body, body=fine)
    assert answer.status == 200 and [r.body for r in answer.reached] == [fine]
    attack = json.dumps({"experiment_id": "0", "request_ids": ["/home/alice/projects"]}).encode()
    answer = through("POST", route, json_body, body=attack)
    assert answer.status == 403 and "not an ID MLflow makes" in error(answer)["message"] and answer.reached == []
    # MLflow decodes a JSON string a second time (request_json.py): so does the check.
    answer = through("POST", route, json_body, body=json.dumps(attack.decode()).encode())
    assert answer.status == 403 and answer.reached == []


@ADAPTERS
def test_a_body_over_the_limit_is_refused(through):
    body = b'{"name": "' + b"x" * LIMIT + b'"}'
    answer = through("POST", "/ajax-api/2.0/mlflow/experiments/create",
                     dict(LOGGED_IN, **{"content-type": "application/json"}), body=body)
    assert answer.status == 403 and "too large" in error(answer)["message"] and answer.reached == []


@ADAPTERS
def test_an_artifact_outside_the_store_is_refused_after_asking_mlflow_where_it_is(through):
    answer = through("GET", "/get-artifact", LOGGED_IN, query=f"run_id={RUN_OUTSIDE}&path=passwd")
    assert answer.status == 403 and "'/etc/passwd'" in error(answer)["message"]
    assert [(r.method, r.path, r.query) for r in answer.reached] == [
        ("GET", "/ajax-api/2.0/mlflow/runs/get", f"run_id={RUN_OUTSIDE}")]
    assert answer.reached[0].headers["host"] == "localhost:5001"


@ADAPTERS
def test_an_artifact_inside_the_store_passes_and_streams_as_mlflow_sends_it(through):
    answer = through("GET", "/get-artifact", LOGGED_IN, query=f"run_id={RUN_INSIDE}&path=a.txt")
    assert answer.status == 200 and answer.pieces == list(ARTIFACT)
    assert [r.path for r in answer.reached] == ["/ajax-api/2.0/mlflow/runs/get", "/get-artifact"]


@ADAPTERS
def test_an_unknown_run_s_artifacts_are_refused(through):
    answer = through("GET", "/get-artifact", LOGGED_IN, query=f"run_id={'d' * 32}&path=a.txt")
    assert answer.status == 403 and "could not find the run" in error(answer)["message"]
    assert len(answer.reached) == 1


@ADAPTERS
def test_the_index_page_gets_the_view_script_and_the_page_policy(through):
    answer = through("GET", "/", dict(LOGGED_IN, **{"if-none-match": '"page-1"'}))
    assert answer.status == 200
    head = b"<head>"
    at = answer.body.index(head) + len(head)
    assert answer.body[at:].startswith(b"<script>") and b"mlflow.workflowType_v1" in answer.body
    assert answer.body.replace(answer.body[at:answer.body.index(b"</script>") + 9], b"") == PAGE
    assert answer.header("content-length") == str(len(answer.body))
    assert answer.header("cache-control") == "no-store" and answer.header("etag") is None
    policy_header = answer.header("content-security-policy")
    assert "script-src 'self' 'unsafe-inline' blob:;" in policy_header and "frame-ancestors 'self'" in policy_header
    [reached] = answer.reached
    assert "if-none-match" not in reached.headers and reached.headers["host"] == "localhost:5001"


@ADAPTERS
def test_head_gets_the_headers_of_the_answer_and_no_body(through):
    get, head = through("GET", SEARCH, {"host": NODE}), through("HEAD", SEARCH, {"host": NODE})
    assert head.status == get.status == 401 and head.body == b""
    assert head.headers == get.headers and int(head.header("content-length")) == len(get.body) > 0


@ADAPTERS
def test_health_answers_anyone(through):
    answer = through("GET", "/health", {"host": NODE})
    assert (answer.status, answer.body, answer.header("content-type")) == (200, b"OK", "text/plain; charset=utf-8")


def test_both_adapters_answer_alike():
    """Status, headers (names compared without case) and body, for a request of each kind."""
    requests = [("GET", SEARCH, {"host": NODE}, ""), ("GET", "/", LOGGED_IN, ""),
                ("GET", "/get-artifact", LOGGED_IN, f"run_id={RUN_OUTSIDE}&path=x"), ("HEAD", "/login", {}, "")]
    for method, path, headers, query in requests:
        wsgi, asgi = through_wsgi(method, path, headers, query), through_asgi(method, path, headers, query)
        assert (wsgi.status, wsgi.body) == (asgi.status, asgi.body), path
        assert [(k.lower(), v) for k, v in wsgi.headers] == [(k.lower(), v) for k, v in asgi.headers], path
