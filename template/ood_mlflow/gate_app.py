"""The login gate as an `mlflow.app` plugin: `mlflow server --app-name ood-gate`.

MLflow's CLI does all the store, artifact and prefix setup and then starts its
web server on this module's `create_app`, the way its own basic-auth plugin is
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

import os

from . import settings
from .gate_policy import MAX_LOGIN_BODY, Decision, GatePolicy

ENV_PREFIX = "OOD_MLFLOW_GATE_PREFIX"
ENV_PORT = "OOD_MLFLOW_GATE_PORT"
ENV_READ_ONLY = "OOD_MLFLOW_GATE_READ_ONLY"


def policy_from_environment() -> GatePolicy:
    return GatePolicy(secret=settings.read_secret(), port=int(os.environ[ENV_PORT]),
                      prefix=os.environ.get(ENV_PREFIX, ""), read_only=bool(os.environ.get(ENV_READ_ONLY)))


def create_app():
    policy = policy_from_environment()
    if os.environ.get("_MLFLOW_SGI_NAME") == "uvicorn":
        from mlflow.server.fastapi_app import app as mlflow_asgi_app

        return AsgiGate(mlflow_asgi_app, policy)
    from mlflow.server import app as mlflow_flask_app

    return WsgiGate(mlflow_flask_app, policy)


class AsgiGate:
    def __init__(self, app, policy: GatePolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope.get("method", "GET")
        decision = self.policy.decide(method, scope["path"], headers)
        if decision.action == "login":
            decision = self.policy.login(await _read_body(receive), headers)
        if decision.action == "pass":
            return await self.app(_rewrite_scope(scope, decision), receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await _respond_asgi(send, decision, head=method == "HEAD")


def _rewrite_scope(scope, decision: Decision):
    drop = set(decision.drop_request_headers) | set(decision.set_request_headers)
    headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in drop]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.set_request_headers.items()]
    return dict(scope, headers=headers)


async def _read_body(receive) -> bytes:
    body = b""
    while len(body) <= MAX_LOGIN_BODY:
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
    def __init__(self, app, policy: GatePolicy):
        self.app = app
        self.policy = policy

    def __call__(self, environ, start_response):
        headers = _wsgi_headers(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        decision = self.policy.decide(method, environ.get("PATH_INFO", ""), headers)
        if decision.action == "login":
            decision = self.policy.login(_read_wsgi_body(environ), headers)
        if decision.action == "pass":
            for name in decision.drop_request_headers:
                environ.pop(_wsgi_key(name), None)
            for name, value in decision.set_request_headers.items():
                environ[_wsgi_key(name)] = value
            return self.app(environ, start_response)
        body = decision.body.encode("utf-8")
        out = list(decision.headers) + [("Content-Length", str(len(body)))]
        if not any(k.lower() == "content-type" for k, _ in decision.headers):
            out.append(("Content-Type", "text/plain; charset=utf-8"))
        start_response(f"{decision.status} {_REASONS.get(decision.status, '')}", out)
        return [b"" if method == "HEAD" else body]


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


def _read_wsgi_body(environ) -> bytes:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_LOGIN_BODY)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""
