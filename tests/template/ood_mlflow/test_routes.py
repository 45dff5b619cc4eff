"""Walk the route tables of the installed MLflow 2.22 and 3.17 through the gate.

A read-only session must refuse every (method, route) that is not on the
read-only list, and the committed list must be what the route tables give
today (tests/tools/write_read_only_routes.py), so a new MLflow route is seen.
"""

import re
import time

import pytest

from ood_mlflow.gate_policy import COOKIE_NAME, GatePolicy, cookie_token
from ood_mlflow.read_only_routes import READ_ONLY_ROUTES
from tests.tools.write_read_only_routes import read_only_routes, route_table

pytestmark = pytest.mark.launch  # needs the MLflow venvs

SECRET = "s" * 40
ENDS = int(time.time()) + 3600


@pytest.fixture(scope="module", params=["2", "3"])
def table(request):
    return route_table(request.param)


def concrete(route: str) -> str:
    """A path that the route matches: every variable filled in."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "v1", route)


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


def test_every_artifact_route_is_confined_or_refused(table):
    gate = GatePolicy(secret=SECRET, port=5001, owner="alice", ends_at=ENDS)
    headers = {"host": "node:5001", "cookie": f"{COOKIE_NAME}={cookie_token(SECRET, 'alice', ENDS)}"}
    for method, route in table:
        if "artifact" in route.lower():
            decision = gate.decide(method, concrete(route), headers)
            assert decision.artifact or decision.status == 403, (method, route)
