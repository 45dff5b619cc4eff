"""Print MLflow's route table as JSON: [[method, route], ...], for the installed MLflow.

Run with an MLflow environment's python. Walks the Flask url_map (2.x and 3.x)
and, where MLflow serves through FastAPI (3.3+), the FastAPI routes too.
Used by the read-only route walk (tests/template/ood_mlflow/gate/test_routes.py) and
to regenerate template/ood_mlflow/gate/read_only_routes.py.
"""

import json
import os
import sys

os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
from mlflow.server import app  # noqa: E402

IGNORED = {"HEAD", "OPTIONS"}
pairs = {(m, rule.rule) for rule in app.url_map.iter_rules() for m in rule.methods - IGNORED}


def walk_fastapi(routes, prefix=""):
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:  # an included router (FastAPI 0.120+)
            context = getattr(route, "include_context", None)
            walk_fastapi(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif getattr(route, "methods", None) and getattr(route, "path", None):
            pairs.update((m, prefix + route.path) for m in route.methods - IGNORED)


try:
    from mlflow.server.fastapi_app import app as fastapi_app
except ImportError:
    fastapi_app = None
if fastapi_app is not None:
    walk_fastapi(fastapi_app.routes)
json.dump(sorted(pairs), sys.stdout)
