"""The gate's journey on its own: what it asks for, in which order, and how it ends, with no web server at all."""

from __future__ import annotations

import json
import time

from ood_mlflow.gate.bodies import MAX_INSPECTED_BODY
from ood_mlflow.gate.pipeline import AskMlflow, Gate, Journey, Pass, ReadBody, Request, Respond
from ood_mlflow.gate.policy import COOKIE_NAME, MAX_LOGIN_BODY, GatePolicy, cookie_token

SECRET = "p" * 40
ENDS = int(time.time()) + 3600
LOGGED_IN = {"host": "node:5001", "cookie": f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"}
TRACE = "tr-" + "f" * 32


def gate(**policy) -> Gate:
    return Gate(GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS, **policy), ("/store",))


def walk(journey: Journey, answers: list) -> tuple:
    """(the needs the journey asked, its end), answering each need with the next of `answers`."""
    needs, step = [], journey.step()
    while isinstance(step, (ReadBody, AskMlflow)):
        needs.append(step)
        step = journey.step(answers.pop(0))
    return needs, step


def test_health_ends_at_once():
    needs, end = walk(Journey(gate(), Request("GET", "/health", {})), [])
    assert needs == [] and end == Respond(200, (), (("Content-Length", "2"), ("Content-Type",
                                                                          "text/plain; charset=utf-8")), b"OK")


def test_login_reads_no_more_of_the_body_than_a_login_needs():
    needs, end = walk(Journey(gate(), Request("POST", "/login", {"host": "node:5001"})), [b"password=" + b"p" * 40])
    assert needs == [ReadBody(MAX_LOGIN_BODY)] and end.status == 303


def test_a_checked_body_is_read_once_and_handed_on():
    body = b'{"experiment_ids": ["0"]}'
    request = Request("POST", "/ajax-api/2.0/mlflow/runs/search", LOGGED_IN)
    needs, end = walk(Journey(gate(), request), [body])
    assert needs == [ReadBody(MAX_INSPECTED_BODY + 1)]
    assert end == Pass({"host": "localhost:5001"}, ("origin",), body, "")


def test_a_trace_s_location_is_asked_of_3x_first_then_of_2x():
    request = Request("GET", "/ajax-api/2.0/mlflow/get-trace-artifact", LOGGED_IN, f"request_id={TRACE}")
    found = json.dumps({"trace_info": {"tags": {"mlflow.artifactLocation": "/store/1/traces/x"}}}).encode()
    needs, end = walk(Journey(gate(), request), [(404, b"{}"), (200, found)])
    assert needs == [AskMlflow(f"/ajax-api/3.0/mlflow/traces/{TRACE}", ""),
                     AskMlflow(f"/ajax-api/2.0/mlflow/traces/{TRACE}/info", "")]
    assert isinstance(end, Pass) and end.body is None


def test_the_first_owner_found_is_the_one():
    request = Request("GET", "/ajax-api/2.0/mlflow/get-trace-artifact", LOGGED_IN, f"request_id={TRACE}")
    elsewhere = json.dumps({"trace": {"trace_info": {"tags": {"mlflow.artifactLocation": "/etc"}}}}).encode()
    needs, end = walk(Journey(gate(), request), [(200, elsewhere)])
    assert len(needs) == 1 and end.status == 403 and b"'/etc/traces.json'" in end.body


def test_head_keeps_the_length_of_the_body_it_does_not_send():
    needs, end = walk(Journey(gate(), Request("HEAD", "/ajax-api/2.0/mlflow/runs/get", {"host": "n"})), [])
    get = walk(Journey(gate(), Request("GET", "/ajax-api/2.0/mlflow/runs/get", {"host": "n"})), [])[1]
    assert end.status == 401 and end.body == b"" and end.framing == get.framing
    assert end.framing[0] == ("Content-Length", str(len(get.body)))


def test_the_index_page_passes_with_the_view_and_no_cached_copy():
    needs, end = walk(Journey(gate(default_view="training"), Request("GET", "/", LOGGED_IN)), [])
    assert needs == [] and end.view == "training"
    assert set(end.drop_headers) == {"origin", "if-none-match", "if-modified-since"}


def test_with_the_checks_off_artifacts_are_not_confined():
    unconfined = Gate(gate().policy, None)
    request = Request("GET", "/get-artifact", LOGGED_IN, "run_id=" + "a" * 32 + "&path=x")
    assert walk(Journey(unconfined, request), []) == ([], Pass({"host": "localhost:5001"}, ("origin",)))
