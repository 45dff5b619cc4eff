"""A request's journey through the gate, written once for both web servers (pure).

    decide (policy.py) -> log in -> confine an artifact (artifacts.py) or check the body (bodies.py)
                       -> respond, or pass to MLflow (the index page with the view, ui_view.py)

The journey knows nothing of ASGI or WSGI: it works on a `Request` and, where it needs what only the web server
has, says so with a `ReadBody` (the request's body, up to a limit) or an `AskMlflow` (a GET to MLflow in-process,
for where an artifact lives), and goes on with the answer. Its end is a `Respond` or a `Pass`. The adapters in
app.py answer the needs and carry the end out, as werkzeug's sansio splits HTTP from the I/O around it: so one
journey serves MLflow 3.x's uvicorn (async) and 2.x's gunicorn or werkzeug (blocking) alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .artifacts import ArtifactRequest
from .bodies import MAX_INSPECTED_BODY, body_refusal
from .peers import owner_process
from .policy import MAX_LOGIN_BODY, Decision, GatePolicy, permission_denied
from .ui_view import UI_PAGE_POLICY


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # decoded, as the web server gives it
    headers: dict  # lower-case names
    query: str = ""
    client: Optional[tuple] = None  # the peer's (address, port)


@dataclass(frozen=True)
class ReadBody:
    """Need: the request's body, at least `limit` bytes of it when it has them (more than that is not read)."""
    limit: int


@dataclass(frozen=True)
class AskMlflow:
    """Need: (status, body) of a GET to MLflow in-process, as a local request to the session's port."""
    path: str  # percent-encoded, as in a URL
    query: str


@dataclass(frozen=True)
class Respond:
    """End: the gate answers itself. `body` is empty for HEAD; `framing` says what the full body was."""
    status: int
    headers: tuple  # (name, value) pairs
    framing: tuple  # Content-Length, and Content-Type when the answer had none
    body: bytes


@dataclass(frozen=True)
class Pass:
    """End: MLflow answers. The request goes on with its headers changed; `body`, when not None, is what the gate
    read of it, handed to MLflow in its place; with `view`, the index page is answered through ui_view.index_page."""
    set_headers: dict = field(default_factory=dict)  # each replaces every header of its name
    drop_headers: tuple = ()
    body: Optional[bytes] = None
    view: str = ""


NEEDS = (ReadBody, AskMlflow)


@dataclass(frozen=True)
class Gate:
    """What the journey needs to know of the session."""
    policy: GatePolicy
    roots: Optional[tuple] = ()  # where artifacts may be; None: the test-only switch, no confinement
    ui_page_policy: str = UI_PAGE_POLICY


class Journey:
    """One request's way through the gate: `step()` gives the first need or the end; while it is a need, answer it
    with `step(answer)`."""

    def __init__(self, gate: Gate, request: Request):
        self._steps = _journey(gate, request)

    def step(self, answer=None):
        try:
            return self._steps.send(answer)  # the first send(None) starts the journey
        except StopIteration as end:
            return end.value


def _journey(gate: Gate, request: Request):
    policy = gate.policy
    decision = policy.decide(request.method, request.path, request.headers, request.query, request.client,
                             owner_process(request.client, policy.port))
    if decision.action == "login":
        decision = policy.login((yield ReadBody(MAX_LOGIN_BODY)), request.headers)
    body = None  # what the gate has read of the body, if anything: MLflow gets it in the body's place
    if decision.action == "pass" and decision.artifact and gate.roots is not None:
        decision = yield from _confined_artifact(decision, request.query, policy.prefix, gate.roots)
    elif decision.action == "pass" and decision.inspect:
        # One byte over the limit, so a body that is too large is seen to be.
        body = yield ReadBody(MAX_INSPECTED_BODY + 1)
        message = body_refusal(decision.inspect, decision.route, body, request.query, gate.roots)
        decision = permission_denied(message) if message else decision
    if decision.action != "pass":
        return respond(decision, head=request.method == "HEAD")
    return Pass(dict(decision.set_request_headers), tuple(decision.drop_request_headers), body, decision.default_view)


def _confined_artifact(decision: Decision, query: str, prefix: str, roots: tuple):
    """The decision once MLflow has said where the artifact's owner keeps its files: asked in-process, so the gate
    checks the very location MLflow will use; the first owner found is the one."""
    request = ArtifactRequest(decision.artifact, decision.route_id, query, prefix)
    answers = []
    for target, _ in request.queries:
        path, _, target_query = target.partition("?")
        status, raw = yield AskMlflow(path, target_query)
        answers.append((status, _json(raw)))
        if status == 200:
            break
    message = request.refusal(answers, roots)
    return permission_denied(message) if message else decision


def respond(decision: Decision, head: bool) -> Respond:
    body = decision.body.encode("utf-8")
    framing = (("Content-Length", str(len(body))),)
    if not any(k.lower() == "content-type" for k, _ in decision.headers):
        framing += (("Content-Type", "text/plain; charset=utf-8"),)
    return Respond(decision.status, tuple(decision.headers), framing, b"" if head else body)


def _json(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None
