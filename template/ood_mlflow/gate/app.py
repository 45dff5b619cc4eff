"""The login gate as an `mlflow.app` plugin: `mlflow server --app-name ood-gate`.

MLflow's CLI (or, in one process, serve_in_process.py doing what the CLI
would) does all the store, artifact and prefix setup and then starts its web
server on this module's `create_app`, the way its own basic-auth plugin is
wired (mlflow/server/auth). The entry point is declared by the
`ood_mlflow-*.dist-info` directory staged beside this package, so nothing has
to be installed into the user's MLflow environment.

MLflow 3.3+ serves through uvicorn (ASGI); 2.x through gunicorn (WSGI). The
CLI tells its workers which in `_MLFLOW_SGI_NAME`, which MLflow's basic-auth
plugin reads too; we only read it.

Keep the imports at the top to the standard library: the CLI imports this
module once just to see that `create_app` is a factory.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pwd
import sys
from urllib.parse import unquote

from .. import auth_stand_in
from ..one_import import adapter_for
from ..session import Plan, read_plan, read_secret
from . import artifacts as artifact_rules, bodies as gate_bodies, ui_view
from .peers import client_uid
from .policy import MAX_LOGIN_BODY, Decision, GatePolicy, json_error, parse_networks


def policy_for(plan: Plan) -> GatePolicy:
    return GatePolicy(secret=read_secret(), port=plan.port, prefix=plan.prefix, read_only=plan.read_only,
                      owner=pwd.getpwuid(os.getuid()).pw_name, trusted_proxies=parse_networks(plan.trusted_proxies),
                      ends_at=plan.ends_at, ui_view=plan.ui_view, proxy_path=plan.portal_path,
                      pdf_previews=not ui_evaluates_strings(plan.mlflow_version))


# The UI page's Content-Security-Policy: scripts only from the session, no eval of strings (so a planted file
# cannot make a viewer in the UI turn its text into code), nothing framed in or by another site. Inline scripts
# stay (MLflow's page and ui_view's snippet have them); workers may come from blob: (pdf.js).
_UI_PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'{eval} blob:; worker-src 'self' blob:; "
                   "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
                   "connect-src 'self'; frame-src 'self' blob: data:; object-src 'none'; base-uri 'self'; "
                   "form-action 'self'; frame-ancestors 'self'")
UI_PAGE_POLICY = _UI_PAGE_POLICY.format(eval="")
# MLflow 2.22's UI evaluates strings as it starts ("Something went wrong" without 'unsafe-eval'), so its page
# keeps eval; its pdf.js 2.1 (CVE-2024-4367) gets no PDF from the gate instead (gate_policy.NO_PDF_PREVIEW).
UI_PAGE_POLICY_WITH_EVAL = _UI_PAGE_POLICY.format(eval=" 'unsafe-eval'")


def ui_evaluates_strings(mlflow_version: str) -> bool:
    """MLflow 2.x's UI: its page keeps 'unsafe-eval', so the gate keeps PDFs from its viewer instead."""
    return mlflow_version.split(".")[0] in ("", "1", "2")


def page_policy(mlflow_version: str) -> str:
    return UI_PAGE_POLICY_WITH_EVAL if ui_evaluates_strings(mlflow_version) else UI_PAGE_POLICY


# Test-only: `off` in the job's environment switches off the gate's read-write allowlist, ID, body and artifact
# checks (login, owner, origin, the refused families and read-only stay), so the tests can show that the
# kernel's confinement holds on its own (tests/test_kernel_confinement.py). Only the session's owner sets their
# job's environment, and only their own session is weakened.
TEST_CHECKS_SWITCH = "OOD_MLFLOW_TEST_GATE_CHECKS"


def create_app():
    plan = read_plan()
    # On the CLI path too (this factory runs in the web server's process before any request): auth off, said once.
    adapter = adapter_for(plan.mlflow_version)
    auth_stand_in.install(adapter.auth_names if adapter else ())
    policy = policy_for(plan)
    roots = artifact_rules.allowed_roots(plan.store_kind, plan.store_path, plan.artifact_root, plan.artifact_roots)
    if os.environ.get(TEST_CHECKS_SWITCH) == "off":
        policy, roots = dataclasses.replace(policy, checks=False), None
    if os.environ.get("_MLFLOW_SGI_NAME") == "uvicorn":
        from mlflow.server.fastapi_app import app as mlflow_asgi_app

        return AsgiGate(mlflow_asgi_app, policy, roots, page_policy(plan.mlflow_version))
    from mlflow.server import app as mlflow_flask_app

    return WsgiGate(mlflow_flask_app, policy, roots, page_policy(plan.mlflow_version))


def local_owner(client, port: int):
    """A callable: is the peer a local process of this session's user? (read from /proc/net)"""
    return lambda: bool(client) and client_uid(client[0], int(client[1]), port) == os.getuid()


def with_body(decision: Decision, body: bytes, query: str, roots) -> Decision:
    """The decision once the body of an inspected request is read (both adapters)."""
    message = gate_bodies.body_refusal(decision.inspect, decision.route, body, query, roots)
    return refused(message) if message else decision


def refused(message: str) -> Decision:
    return json_error(403, "PERMISSION_DENIED", message)


class AsgiGate:
    def __init__(self, app, policy: GatePolicy, roots: tuple = (), ui_page_policy: str = UI_PAGE_POLICY):
        self.app = app
        self.policy = policy
        self.roots = roots
        self.ui_page_policy = ui_page_policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope.get("method", "GET")
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        decision = self.policy.decide(method, scope["path"], headers, query, client, local_owner(client, self.policy.port))
        if decision.action == "login":
            decision = self.policy.login(await _read_body(receive), headers)
        if decision.action == "pass" and decision.artifact and self.roots is not None:
            request = artifact_rules.ArtifactRequest(decision.artifact, decision.route_id, query, self.policy.prefix)
            message = request.refusal(await self._answers(request.queries), self.roots)
            decision = refused(message) if message else decision
        elif decision.action == "pass" and decision.inspect:
            body = await _read_body(receive, artifact_rules.MAX_INSPECTED_BODY + 1)
            receive = _replay(body)
            decision = with_body(decision, body, query, self.roots)
        if decision.action == "pass" and decision.ui_view:
            page = _IndexPage(send, decision.ui_view, self.ui_page_policy)
            return await self.app(_rewrite_scope(scope, decision), receive, page)
        if decision.action == "pass":
            return await self.app(_rewrite_scope(scope, decision), receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await _respond_asgi(send, decision, head=method == "HEAD")

    async def _answers(self, queries) -> list:
        """MLflow's own answers to the location queries, asked in-process; stops at the first found."""
        answers = []
        for target, _ in queries:
            answers.append(await self._get(target))
            if answers[-1][0] == 200:
                break
        return answers

    async def _get(self, target: str) -> tuple:
        path, _, query = target.partition("?")
        port = self.policy.port
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": unquote(path), "raw_path": path.encode(), "root_path": "",
                 "query_string": query.encode(), "headers": [(b"host", f"localhost:{port}".encode())],
                 "client": ("127.0.0.1", 0), "server": ("localhost", port)}
        status, chunks = [0], []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status[0], _json(b"".join(chunks))


class _IndexPage:
    """An ASGI send() that adds the view snippet to an HTML answer (the UI's index page)."""

    def __init__(self, send, view: str, page_policy: str):
        self.send, self.view, self.page_policy = send, view, page_policy
        self.start, self.chunks = None, []

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.start = message
            return None
        if message["type"] != "http.response.body" or self.start is None:
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.start["headers"]]
        text, body = _with_view(text, b"".join(self.chunks), self.view, self.start["status"], self.page_policy)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in text]
        await self.send(dict(self.start, headers=headers))
        await self.send({"type": "http.response.body", "body": body})


def _with_view(headers: list, body: bytes, view: str, status: int, policy: str = UI_PAGE_POLICY) -> tuple:
    """(headers, body) of the index page with the view snippet and its policy; other answers unchanged.
    Headers are str pairs."""
    names = {k.lower(): v for k, v in headers}
    if status != 200 or not names.get("content-type", "").startswith("text/html") or "content-encoding" in names:
        return headers, body
    body = ui_view.with_view(body, view)
    stale = ("content-length", "cache-control", "etag", "last-modified", "content-security-policy")
    return [(k, v) for k, v in headers if k.lower() not in stale] + [
        ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
        ("Content-Security-Policy", policy)], body


def _rewrite_scope(scope, decision: Decision):
    drop = set(decision.drop_request_headers) | set(decision.set_request_headers)
    headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in drop]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.set_request_headers.items()]
    return dict(scope, headers=headers)


def _json(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _replay(body: bytes):
    """A receive() that hands MLflow the body the gate has already read."""
    sent = [False]

    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


async def _read_body(receive, limit: int = MAX_LOGIN_BODY) -> bytes:
    body = b""
    while len(body) <= limit:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return body


async def _respond_asgi(send, decision: Decision, head: bool):
    body = decision.body.encode("utf-8")
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers]
    headers.append((b"content-length", str(len(body)).encode()))
    if not any(k.lower() == "content-type" for k, _ in decision.headers):
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": decision.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class WsgiGate:
    def __init__(self, app, policy: GatePolicy, roots: tuple = (), ui_page_policy: str = UI_PAGE_POLICY):
        self.app = app
        self.policy = policy
        self.roots = roots
        self.ui_page_policy = ui_page_policy

    def __call__(self, environ, start_response):
        headers = _wsgi_headers(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        query = environ.get("QUERY_STRING", "")
        client = (environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT") or 0)
        decision = self.policy.decide(method, environ.get("PATH_INFO", ""), headers, query, client,
                                      local_owner(client, self.policy.port))
        if decision.action == "login":
            decision = self.policy.login(_read_wsgi_body(environ), headers)
        if decision.action == "pass" and decision.artifact and self.roots is not None:
            request = artifact_rules.ArtifactRequest(decision.artifact, decision.route_id, query, self.policy.prefix)
            message = request.refusal(self._answers(request.queries), self.roots)
            decision = refused(message) if message else decision
        elif decision.action == "pass" and decision.inspect:
            body = _read_wsgi_body(environ, artifact_rules.MAX_INSPECTED_BODY + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            decision = with_body(decision, body, query, self.roots)
        if decision.action == "pass":
            for name in decision.drop_request_headers:
                environ.pop(_wsgi_key(name), None)
            for name, value in decision.set_request_headers.items():
                environ[_wsgi_key(name)] = value
            if decision.ui_view:
                return self._index_page(environ, start_response, decision.ui_view)
            return self.app(environ, start_response)
        body = decision.body.encode("utf-8")
        out = list(decision.headers) + [("Content-Length", str(len(body)))]
        if not any(k.lower() == "content-type" for k, _ in decision.headers):
            out.append(("Content-Type", "text/plain; charset=utf-8"))
        start_response(f"{decision.status} {_REASONS.get(decision.status, '')}", out)
        return [b"" if method == "HEAD" else body]


    def _index_page(self, environ, start_response, view: str):
        answer = {}

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return lambda data: None  # MLflow's Flask app returns its body instead
        body = _wsgi_body(self.app(environ, capture))
        status = int(answer["status"].split()[0])
        headers, body = _with_view(answer["headers"], body, view, status, self.ui_page_policy)
        start_response(answer["status"], headers)
        return [body]

    def _answers(self, queries) -> list:
        answers = []
        for target, _ in queries:
            answers.append(self._get(target))
            if answers[-1][0] == 200:
                break
        return answers

    def _get(self, target: str) -> tuple:
        """A GET to MLflow's Flask app in-process, as a local request."""
        path, _, query = target.partition("?")
        port = str(self.policy.port)
        environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": unquote(path).encode().decode("latin-1"),
                   "QUERY_STRING": query, "SERVER_NAME": "localhost", "SERVER_PORT": port,
                   "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": f"localhost:{port}", "REMOTE_ADDR": "127.0.0.1",
                   "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
                   "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
                   "wsgi.run_once": False}
        status = [0]

        def start_response(line, headers, exc_info=None):
            status[0] = int(line.split()[0])

        body = _wsgi_body(self.app(environ, start_response))  # sets status: call before reading it
        return status[0], _json(body)


_REASONS = {200: "OK", 303: "See Other", 401: "Unauthorized", 403: "Forbidden"}


def _wsgi_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _wsgi_headers(environ) -> dict:
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _wsgi_body(result) -> bytes:
    """All of a WSGI app's answer body, closing it as the WSGI spec asks."""
    try:
        return b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()


def _read_wsgi_body(environ, limit: int = MAX_LOGIN_BODY) -> bytes:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), limit)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""
