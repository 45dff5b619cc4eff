"""Walk the route tables of the installed MLflow 2.22 and 3.17 through the gate.

A read-only session must refuse every (method, route) that is not on the
read-only list, a read-write session every one not on the read-write list, and
the committed lists must be what the route tables give today
(tests/tools/write_read_only_routes.py), so a new MLflow route is seen.
"""

import re
import time

import pytest

from ood_mlflow.gate.policy import COOKIE_NAME, GatePolicy, cookie_token
from ood_mlflow.gate.read_only_routes import READ_ONLY_ROUTES
from ood_mlflow.gate.read_write_routes import READ_WRITE_ROUTES
from tests.tools.write_read_only_routes import read_only_routes, read_write_routes, route_table, unrouted_writes

pytestmark = pytest.mark.launch  # needs the MLflow venvs

SECRET = "s" * 40
ENDS = int(time.time()) + 3600


@pytest.fixture(scope="module", params=["2", "3"])
def table(request):
    return route_table(request.param)


HEX = "0123456789abcdef" * 2
SHAPED = {"trace_id": "tr-" + HEX, "request_id": HEX, "model_id": "m-" + HEX, "assessment_id": "a-" + HEX}


def concrete(route: str) -> str:
    """A path that the route matches: every variable filled in, IDs in MLflow's shape."""
    return re.sub(r"<(?:\w+:)?(\w+)>|\{(\w+)(?::\w+)?\}|\{[^}]+\}",
                  lambda m: SHAPED.get(m.group(1) or m.group(2), "v1"), route)


def test_every_route_off_the_read_only_list_is_refused(table):
    gate = GatePolicy(secret=SECRET, port=5001, read_only=True, owner="alice", ends_at=ENDS)
    headers = {"host": "node:5001", "cookie": f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"}
    allowed = set(READ_ONLY_ROUTES)
    checked = 0
    for method, route in table:
        decision = gate.decide(method, concrete(route), headers)
        if (method, route) in allowed:
            # passed to MLflow, or answered by the gate itself (health, the empty gateway list)
            assert decision.action in ("pass", "health") or decision.status == 200, (method, route, decision.body)
        else:
            assert decision.action == "respond" and decision.status == 403, (method, route)
        checked += 1
    assert checked > 100


def test_the_read_only_list_matches_the_route_tables():
    table = route_table("2") | route_table("3")
    assert sorted(READ_ONLY_ROUTES) == read_only_routes(table), \
        "MLflow's routes changed: run tests/tools/write_read_only_routes.py and review the diff"


def test_every_route_off_the_read_write_list_is_refused(table):
    gate = GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS)
    headers = {"host": "node:5001", "cookie": f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"}
    allowed = set(READ_WRITE_ROUTES)
    checked = passed = 0
    for method, route in table:
        decision = gate.decide(method, concrete(route), headers)
        if (method, route) in allowed:
            assert decision.action in ("pass", "health") or decision.status == 200, (method, route, decision.body)
            passed += method != "GET"
        else:
            assert decision.action == "respond" and decision.status == 403, (method, route)
            assert "switched off in Open OnDemand sessions" in decision.body, (method, route, decision.body)
        checked += 1
    assert checked > 100 and passed > 20


def test_the_read_write_list_matches_the_route_tables():
    table = route_table("2") | route_table("3")
    assert not unrouted_writes(table), "UI_WRITES names routes MLflow does not have"
    assert sorted(READ_WRITE_ROUTES) == read_write_routes(table), \
        "MLflow's routes changed: run tests/tools/write_read_only_routes.py and review the diff"
    writes = {m for m, _ in READ_WRITE_ROUTES} - {"GET"}
    assert writes == {"POST", "PATCH", "DELETE"}


def test_every_artifact_route_is_confined_or_refused(table):
    gate = GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS)
    headers = {"host": "node:5001", "cookie": f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"}
    for method, route in table:
        if "artifact" in route.lower():
            decision = gate.decide(method, concrete(route), headers)
            assert decision.artifact or decision.status == 403, (method, route)
