"""Regenerate template/ood_mlflow/gate/read_only_routes.py and read_write_routes.py from the installed
MLflows' route tables.

    PYTHONPATH=template venv-tests/bin/python -m tests.tools.write_read_only_routes

A read-only session may use every GET route of MLflow 2.22 and 3.17 that is not
refused outright (routes.REFUSED), and the POST routes below, which only read.
A read-write session may use those and the writes below: the writes MLflow
2.22's and 3.17's UI send (found in their JavaScript bundles under
mlflow/server/js/build), and the undo of each (restore after delete, delete-tag
after set-tag). test_routes.py checks the committed lists against the live
route tables.
"""

import json
import subprocess
from pathlib import Path

from devportal.testbed import MLFLOW_VENVS
from ood_mlflow.gate.routes import never_offered

TOP = Path(__file__).resolve().parents[2]
APIS = ("ajax-api", "api")

# POSTs that only read: searches and queries the UI sends as POST bodies.
READING_POSTS = {
    "/graphql",
    "/{api}/2.0/mlflow/experiments/search",
    "/{api}/2.0/mlflow/experiments/search-datasets",
    "/{api}/2.0mlflow/experiments/search-datasets",  # sic: MLflow 3.x registers this spelling too
    "/{api}/2.0/mlflow/runs/search",
    "/{api}/2.0/mlflow/logged-models/search",
    "/{api}/2.0/mlflow/registered-models/get-latest-versions",
    "/{api}/3.0/mlflow/traces/search",
    "/{api}/3.0/mlflow/traces/batchGetInfos",
    "/{api}/3.0/mlflow/traces/metrics",
    "/{api}/3.0/mlflow/traces/calculate-filter-correlation",
    "/{api}/3.0/mlflow/datasets/search",
    "/{api}/3.0/mlflow/issues/search",
    "/{api}/3.0/mlflow/ui-telemetry",
}
READING_POSTS = {p.format(api=api) for p in READING_POSTS for api in APIS}

# Writes of a read-write session: tracking work in the store. Left out on purpose, although routed:
# anything that runs code, calls out or administers (gateway, webhooks, jobs, assistant, scorers and their
# online configurations, issue detection and evaluation that invoke LLMs, prompt optimization, MCP servers,
# workspaces, demo data), and writes the UI never sends: runs/log-batch, log-inputs, outputs (a path from
# model_id), log-model, create-promptlab-run (writes artifacts where the run says, unchecked), logged-model
# create/finalize/params, starting or ending traces (POST traces: a trace ID that is a path makes folders),
# linking traces, the OpenTelemetry ingest (/v1/traces), registered-models/rename, datasets' tags and
# experiment links.
UI_WRITES = {
    ("POST", "/{api}/2.0/mlflow/experiments/create"),  # the body's artifact_location is checked
    ("POST", "/{api}/2.0/mlflow/experiments/update"),  # rename
    ("POST", "/{api}/2.0/mlflow/experiments/delete"),
    ("POST", "/{api}/2.0/mlflow/experiments/restore"),
    ("POST", "/{api}/2.0/mlflow/experiments/set-experiment-tag"),
    ("POST", "/{api}/2.0/mlflow/experiments/delete-experiment-tag"),
    ("POST", "/{api}/2.0/mlflow/runs/create"),
    ("POST", "/{api}/2.0/mlflow/runs/update"),
    ("POST", "/{api}/2.0/mlflow/runs/delete"),
    ("POST", "/{api}/2.0/mlflow/runs/restore"),
    ("POST", "/{api}/2.0/mlflow/runs/set-tag"),
    ("POST", "/{api}/2.0/mlflow/runs/delete-tag"),
    ("POST", "/{api}/2.0/mlflow/runs/log-metric"),
    ("POST", "/{api}/2.0/mlflow/runs/log-parameter"),
    ("POST", "/{api}/2.0/mlflow/upload-artifact"),  # confined like the reading artifact routes
    ("POST", "/{api}/2.0/mlflow/registered-models/create"),
    ("PATCH", "/{api}/2.0/mlflow/registered-models/update"),
    ("DELETE", "/{api}/2.0/mlflow/registered-models/delete"),
    ("POST", "/{api}/2.0/mlflow/registered-models/set-tag"),
    ("DELETE", "/{api}/2.0/mlflow/registered-models/delete-tag"),
    ("POST", "/{api}/2.0/mlflow/registered-models/alias"),
    ("DELETE", "/{api}/2.0/mlflow/registered-models/alias"),
    ("POST", "/{api}/2.0/mlflow/model-versions/create"),
    ("PATCH", "/{api}/2.0/mlflow/model-versions/update"),
    ("DELETE", "/{api}/2.0/mlflow/model-versions/delete"),
    ("POST", "/{api}/2.0/mlflow/model-versions/set-tag"),
    ("DELETE", "/{api}/2.0/mlflow/model-versions/delete-tag"),
    ("POST", "/{api}/2.0/mlflow/model-versions/transition-stage"),
    ("DELETE", "/{api}/2.0/mlflow/logged-models/<model_id>"),
    ("PATCH", "/{api}/2.0/mlflow/logged-models/<model_id>/tags"),
    ("DELETE", "/{api}/2.0/mlflow/logged-models/<model_id>/tags/<tag_key>"),
    ("PATCH", "/{api}/2.0/mlflow/traces/<request_id>/tags"),
    ("DELETE", "/{api}/2.0/mlflow/traces/<request_id>/tags"),
    ("POST", "/{api}/2.0/mlflow/traces/delete-traces"),
    ("PATCH", "/{api}/3.0/mlflow/traces/<trace_id>/tags"),
    ("DELETE", "/{api}/3.0/mlflow/traces/<trace_id>/tags"),
    ("POST", "/{api}/3.0/mlflow/traces/delete-traces"),
    ("POST", "/{api}/3.0/mlflow/traces/<trace_id>/assessments"),
    ("PATCH", "/{api}/3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>"),
    ("DELETE", "/{api}/3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>"),
    ("POST", "/{api}/3.0/mlflow/datasets/create"),
    ("DELETE", "/{api}/3.0/mlflow/datasets/<dataset_id>"),
    ("POST", "/{api}/3.0/mlflow/datasets/<dataset_id>/records"),
    ("DELETE", "/{api}/3.0/mlflow/datasets/<dataset_id>/records"),
    ("PATCH", "/{api}/3.0/mlflow/issues/<issue_id>"),
    ("POST", "/{api}/3.0/mlflow/label-schemas/create"),
    ("PATCH", "/{api}/3.0/mlflow/label-schemas/update"),
    ("DELETE", "/{api}/3.0/mlflow/label-schemas/delete"),
    ("POST", "/{api}/3.0/mlflow/review-queues/create"),
    ("POST", "/{api}/3.0/mlflow/review-queues/update"),
    ("POST", "/{api}/3.0/mlflow/review-queues/delete"),
    ("POST", "/{api}/3.0/mlflow/review-queues/get-or-create-user"),
    ("POST", "/{api}/3.0/mlflow/review-queues/items/add"),
    ("POST", "/{api}/3.0/mlflow/review-queues/items/remove"),
    ("POST", "/{api}/3.0/mlflow/review-queues/items/set-status"),
}
UI_WRITES = {(m, r.format(api=api)) for m, r in UI_WRITES for api in APIS}


def route_table(major: str) -> set:
    python = MLFLOW_VENVS[major] / "bin" / "python"
    out = subprocess.run([str(python), str(TOP / "tests/tools/mlflow_routes.py")], capture_output=True, text=True,
                         check=True).stdout
    return {tuple(pair) for pair in json.loads(out)}


def read_only_routes(table: set) -> list:
    return sorted((method, route) for method, route in table if not never_offered(route, method)
                  and (method == "GET" or (method == "POST" and route in READING_POSTS)))


def read_write_routes(table: set) -> list:
    writes = {(method, route) for method, route in table
              if (method, route) in UI_WRITES and not never_offered(route, method)}
    return sorted(set(read_only_routes(table)) | writes)


def unrouted_writes(table: set) -> list:
    """UI_WRITES that neither MLflow routes on the UI's ajax-api: a typo, or a route MLflow dropped."""
    return sorted((m, r) for m, r in UI_WRITES if r.startswith("/ajax-api/") and (m, r) not in table)


def write_routes(table: set) -> list:
    """What a read-write session may use beyond a read-only one's."""
    return sorted(set(read_write_routes(table)) - set(read_only_routes(table)))


def module_text(name: str, what: str, pairs: list, head: tuple = (), tail: tuple = ()) -> str:
    lines = [f'"""The (method, route) pairs {what}: MLflow 2.22 and 3.17 route tables.', "",
             "Generated by tests/tools/write_read_only_routes.py; test_routes.py checks it.", '"""', "", *head,
             f"{name} = ("]
    lines += [f"    ({m!r}, {r!r})," for m, r in pairs]
    return "\n".join(lines + [")", *tail, ""])


if __name__ == "__main__":
    table = route_table("2") | route_table("3")
    assert not unrouted_writes(table), unrouted_writes(table)
    package = TOP / "template/ood_mlflow/gate"
    (package / "read_only_routes.py").write_text(
        module_text("READ_ONLY_ROUTES", "a read-only session may use", read_only_routes(table)))
    (package / "read_write_routes.py").write_text(
        module_text("WRITE_ROUTES", "a read-write session may use besides the read-only ones", write_routes(table),
                    head=("from .read_only_routes import READ_ONLY_ROUTES", "", ""),
                    tail=("READ_WRITE_ROUTES = READ_ONLY_ROUTES + WRITE_ROUTES",)))
    print(f"{len(read_only_routes(table))} read-only and {len(read_write_routes(table))} read-write routes "
          f"of {len(table)}")
