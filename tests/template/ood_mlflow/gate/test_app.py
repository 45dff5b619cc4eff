"""Both adapters of the gate (WSGI for MLflow 2.x, ASGI for 3.x) check a JSON body before MLflow reads it, and
hand MLflow exactly the body they checked."""

import asyncio
import io
import json
import time

import pytest

from ood_mlflow.gate.app import AsgiGate, WsgiGate
from ood_mlflow.gate.policy import COOKIE_NAME, GatePolicy, cookie_token

SECRET = "s" * 40
ENDS = int(time.time()) + 3600
HEX = "0123456789abcdef" * 2
COOKIE = f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"
ATTACK = {"experiment_id": "0", "request_ids": ["/home/alice/projects"]}
FINE = {"experiment_id": "0", "request_ids": ["tr-" + HEX]}


class Recorder:
    """An app behind the gate that answers 200 and keeps the bodies it got (WSGI and ASGI)."""

    def __init__(self):
        self.bodies = []

    def __call__(self, environ, start_response):
        self.bodies.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    async def asgi(self, scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def wsgi(body: bytes, path="/ajax-api/2.0/mlflow/traces/delete-traces"):
    app = Recorder()
    gate = WsgiGate(app, GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS), ("/store",))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/json", "HTTP_HOST": "node:5001", "HTTP_COOKIE": COOKIE,
               "REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "1", "wsgi.input": io.BytesIO(body)}
    status = []
    answer = b"".join(gate(environ, lambda line, headers, exc_info=None: status.append(int(line.split()[0]))))
    return status[0], answer, app.bodies


def asgi(body: bytes, path="/ajax-api/3.0/mlflow/traces/delete-traces"):
    app = Recorder()
    gate = AsgiGate(app.asgi, GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS), ("/store",))
    chunks = [body[:5], body[5:]]  # the body in two messages, as a client may send it
    sent = []

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "client": ("10.0.0.1", 1),
             "headers": [(b"host", b"node:5001"), (b"cookie", COOKIE.encode()), (b"content-type", b"application/json")]}
    asyncio.run(gate(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), app.bodies


@pytest.mark.parametrize("adapter", [wsgi, asgi])
def test_a_path_as_a_trace_id_never_reaches_mlflow_and_a_checked_body_does_unchanged(adapter):
    status, answer, reached = adapter(json.dumps(ATTACK).encode())
    assert status == 403 and reached == []
    assert json.loads(answer)["error_code"] == "PERMISSION_DENIED" and "not an ID MLflow makes" in answer.decode()
    body = json.dumps(FINE).encode()
    assert adapter(body) == (200, b"{}", [body])


@pytest.mark.parametrize("adapter", [wsgi, asgi])
def test_a_body_mlflow_would_decode_twice_is_checked_decoded(adapter):
    status, _, reached = adapter(json.dumps(json.dumps(ATTACK)).encode())
    assert status == 403 and reached == []
