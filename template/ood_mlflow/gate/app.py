"""The login gate as an `mlflow.app` plugin: `mlflow server --app-name ood-gate`.

MLflow's CLI (or, in one process, server/in_process.py doing what the CLI
would) does all the store, artifact and prefix setup and then starts its web
server on this module's `create_app`, the way its own basic-auth plugin is
wired (mlflow/server/auth). The entry point is declared by the
`ood_mlflow-*.dist-info` directory staged beside this package, so nothing has
to be installed into the user's MLflow environment.

MLflow 3.3+ serves through uvicorn (ASGI); 2.x through gunicorn (WSGI). The
CLI tells its workers which in `_MLFLOW_SGI_NAME`, which MLflow's basic-auth
plugin reads too; we only read it. What the gate does with a request is
pipeline.py's; AsgiGate and WsgiGate only carry each server's requests to it
and its answers back.

Keep the imports at the top to the standard library: the CLI imports this
module once just to see that `create_app` is a factory.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pwd
import sys
from urllib.parse import unquote

from ..plan import Plan, read_plan
from ..server import auth_stand_in
from ..server.adapters import adapter_for
from ..session import read_secret
from .artifacts import allowed_roots
from .pipeline import NEEDS, AskMlflow, Gate, Journey, Pass, ReadBody, Request, Respond
from .policy import GatePolicy, parse_networks
from .ui_view import UI_PAGE_POLICY, index_page, page_policy, ui_evaluates_strings


def policy_for(plan: Plan) -> GatePolicy:
    site = plan.settings
    return GatePolicy(secret=read_secret(), port=plan.port, prefix=plan.prefix, read_only=plan.read_only,
                      owner=pwd.getpwuid(os.getuid()).pw_name, trusted_proxies=parse_networks(site.trusted_proxies),
                      ends_at=plan.ends_at, default_view=site.default_view, proxy_path=plan.portal_path,
                      pdf_previews=not ui_evaluates_strings(plan.mlflow_version))


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
    roots = allowed_roots(plan.store_kind, plan.store_path, plan.artifact_root, plan.settings.artifact_roots)
    if os.environ.get(TEST_CHECKS_SWITCH) == "off":
        policy, roots = dataclasses.replace(policy, checks=False), None
    if os.environ.get("_MLFLOW_SGI_NAME") == "uvicorn":
        from mlflow.server.fastapi_app import app as mlflow_asgi_app

        return AsgiGate(mlflow_asgi_app, policy, roots, page_policy(plan.mlflow_version))
    from mlflow.server import app as mlflow_flask_app

    return WsgiGate(mlflow_flask_app, policy, roots, page_policy(plan.mlflow_version))


class AsgiGate:
    """pipeline.py's journey for an ASGI request (MLflow 3.x, uvicorn)."""

    def __init__(self, app, policy: GatePolicy, roots: tuple = (), ui_page_policy: str = UI_PAGE_POLICY):
        self.app = app
        self.gate = Gate(policy, roots, ui_page_policy)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan
        journey = Journey(self.gate, _asgi_request(scope))
        step = journey.step()
        while isinstance(step, NEEDS):
            step = journey.step(await self._answer(step, receive))
        if isinstance(step, Respond):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await _respond_asgi(send, step)
        if step.body is not None:
            receive = _replay(step.body)
        if step.view:
            send = _IndexPage(send, step.view, self.gate.ui_page_policy)
        # Otherwise the server's own send: MLflow's answer (an artifact too) streams as MLflow sends it.
        return await self.app(_asgi_passed(scope, step), receive, send)

    async def _answer(self, need, receive):
        if isinstance(need, ReadBody):
            return await _read_asgi_body(receive, need.limit)
        return await self._get(need)

    async def _get(self, need: AskMlflow) -> tuple:
        port = self.gate.policy.port
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": unquote(need.path), "raw_path": need.path.encode(), "root_path": "",
                 "query_string": need.query.encode(), "headers": [(b"host", f"localhost:{port}".encode())],
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
        return status[0], b"".join(chunks)


def _asgi_request(scope) -> Request:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return Request(scope.get("method", "GET"), scope["path"], headers,
                   scope.get("query_string", b"").decode("latin-1"), scope.get("client"))


def _asgi_passed(scope, step: Pass):
    drop = set(step.drop_headers) | set(step.set_headers)
    headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in drop]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in step.set_headers.items()]
    return dict(scope, headers=headers)


class _IndexPage:
    """An ASGI send() that holds MLflow's answer to the index page until it is whole, to add the view to it."""

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
        text, body = index_page(self.start["status"], text, b"".join(self.chunks), self.view, self.page_policy)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in text]
        await self.send(dict(self.start, headers=headers))
        await self.send({"type": "http.response.body", "body": body})


def _replay(body: bytes):
    """A receive() that hands MLflow the body the gate has already read."""
    sent = [False]

    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


async def _read_asgi_body(receive, limit: int) -> bytes:
    body = b""
    while len(body) <= limit:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return body


async def _respond_asgi(send, step: Respond):
    # The framing headers in lower case, as this adapter has always sent them.
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in step.headers]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in step.framing]
    await send({"type": "http.response.start", "status": step.status, "headers": headers})
    await send({"type": "http.response.body", "body": step.body})


class WsgiGate:
    """pipeline.py's journey for a WSGI request (MLflow 2.x, gunicorn or werkzeug)."""

    def __init__(self, app, policy: GatePolicy, roots: tuple = (), ui_page_policy: str = UI_PAGE_POLICY):
        self.app = app
        self.gate = Gate(policy, roots, ui_page_policy)

    def __call__(self, environ, start_response):
        journey = Journey(self.gate, _wsgi_request(environ))
        step = journey.step()
        while isinstance(step, NEEDS):
            step = journey.step(self._answer(step, environ))
        if isinstance(step, Respond):
            start_response(f"{step.status} {_REASONS.get(step.status, '')}", list(step.headers + step.framing))
            return [step.body]
        if step.body is not None:
            environ["wsgi.input"] = io.BytesIO(step.body)
            environ["CONTENT_LENGTH"] = str(len(step.body))
        for name in step.drop_headers:
            environ.pop(_wsgi_key(name), None)
        for name, value in step.set_headers.items():
            environ[_wsgi_key(name)] = value
        if step.view:
            return self._index_page(environ, start_response, step.view)
        return self.app(environ, start_response)

    def _answer(self, need, environ):
        if isinstance(need, ReadBody):
            return _read_wsgi_body(environ, need.limit)
        return self._get(need)

    def _index_page(self, environ, start_response, view: str):
        answer = {}

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return lambda data: None  # MLflow's Flask app returns its body instead
        body = _wsgi_body(self.app(environ, capture))
        status = int(answer["status"].split()[0])
        headers, body = index_page(status, answer["headers"], body, view, self.gate.ui_page_policy)
        start_response(answer["status"], headers)
        return [body]

    def _get(self, need: AskMlflow) -> tuple:
        port = str(self.gate.policy.port)
        environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "",
                   "PATH_INFO": unquote(need.path).encode().decode("latin-1"), "QUERY_STRING": need.query,
                   "SERVER_NAME": "localhost", "SERVER_PORT": port, "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": f"localhost:{port}", "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0),
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
                   "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
        status = [0]

        def start_response(line, headers, exc_info=None):
            status[0] = int(line.split()[0])

        body = _wsgi_body(self.app(environ, start_response))  # sets status: call before reading it
        return status[0], body


_REASONS = {200: "OK", 303: "See Other", 401: "Unauthorized", 403: "Forbidden"}


def _wsgi_request(environ) -> Request:
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return Request(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), headers,
                   environ.get("QUERY_STRING", ""), (environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT") or 0))


def _wsgi_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _wsgi_body(result) -> bytes:
    """All of a WSGI app's answer body, closing it as the WSGI spec asks."""
    try:
        return b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()


def _read_wsgi_body(environ, limit: int) -> bytes:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), limit)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""
