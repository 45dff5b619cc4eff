"""Count the imports of mlflow.server.auth that 20 runs searches make, with or without the stand-in.

    python tests/tools/auth_imports.py STORE_DIR stand-in|plain    (with an MLflow 3.x venv's python)

Prints JSON: {"imports": N, "ms_per_search": T, "auth": repr of what `from mlflow.server import auth` gives}.
"""

import json
import os
import sys
import time

store, mode = sys.argv[1], sys.argv[2]
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["_MLFLOW_SERVER_FILE_STORE"] = f"sqlite:///{store}/mlruns.db"
os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = f"{store}/mlartifacts"

import mlflow.server  # noqa: E402, F401 -- the import under test, before the handlers
from mlflow.protos.service_pb2 import SearchRuns  # noqa: E402
from mlflow.server import handlers  # noqa: E402

from ood_mlflow.server import auth_stand_in  # noqa: E402
from ood_mlflow.server.adapters import MLFLOW_3  # noqa: E402

if mode == "stand-in":
    auth_stand_in.install(MLFLOW_3.auth_names)
handlers.initialize_backend_stores(os.environ["_MLFLOW_SERVER_FILE_STORE"], None, f"{store}/mlartifacts")
experiment = handlers._get_tracking_store().create_experiment("e")
counted = []
sys.addaudithook(lambda event, args: counted.append(args[0]) if event == "import" and args[0] == "mlflow.server.auth"
                 else None)
request = SearchRuns(experiment_ids=[experiment], max_results=100)
handlers.search_runs_impl(request)
counted.clear()
started = time.perf_counter()
for _ in range(20):
    handlers.search_runs_impl(request)
spent = (time.perf_counter() - started) / 20 * 1000
imports = len(counted)
try:
    from mlflow.server import auth
except ImportError as error:
    auth = error
print(json.dumps({"imports": imports, "ms_per_search": round(spent, 2),
                  "auth": getattr(auth, "__doc__", None) or repr(auth)}))
