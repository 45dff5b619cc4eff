"""Auth off, said once: a stand-in for MLflow's basic-auth app where it cannot be imported.

MLflow 3.17's runs search and GraphQL handlers run `from mlflow.server import
auth` on every call, to ask whether basic auth is on. Without Flask-WTF (a
plain `pip install mlflow` has none) that import fails every time, after
executing part of the auth package again: about a fifth of a small search's
time, and threads that race on the half-imported module can answer 500. The
session's authentication is the gate, so MLflow's auth is off in every
session; where its app imports, it is left alone and MLflow behaves as it
would, and where it does not, the one-import server finds that out once, at
start, and answers MLflow's questions as the auth app does when it is off.
The names asked for are the adapter's (one_import.Adapter.auth_names), which
tests/template/ood_mlflow/server/test_one_import.py checks against MLflow's source.
"""

from __future__ import annotations

import importlib
import sys
import types

MODULE = "mlflow.server.auth"

# What each name answers with auth off: no config, every experiment visible, no GraphQL middleware.
ANSWERS = {
    "auth_config": None,
    "filter_experiment_ids": lambda experiment_ids: experiment_ids,
    "get_graphql_authorization_middleware": lambda: [],
}


def stand_in(names: tuple) -> types.ModuleType:
    module = types.ModuleType(MODULE, "Open OnDemand session: MLflow's basic auth is off "
                                      "(ood_mlflow.server.auth_stand_in)")
    for name in names:
        setattr(module, name, ANSWERS[name])
    return module


def install(names: tuple, importer=importlib.import_module) -> bool:
    """If MLflow's auth app cannot be imported, put the stand-in where MLflow's imports find it; True if so."""
    if not names:
        return False
    try:
        importer(MODULE)
        return False  # the real app: MLflow asks it, as it would
    except ImportError:
        pass
    module = stand_in(names)
    sys.modules[MODULE] = module
    package = sys.modules.get("mlflow.server")
    if package is not None:
        package.auth = module  # `from mlflow.server import auth` looks here first
    return True
