"""The mlflow server command a session runs."""

import pytest

from ood_mlflow.server.cli import server_environment, session_flags, workers_for
from ood_mlflow.session import public_prefix
from ood_mlflow.stores.uri import Store


def server_argv(*args):
    return session_flags(*args).argv()


def flags(argv):
    return {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1)
            if argv[i].startswith("--") and not argv[i + 1].startswith("--")}


@pytest.mark.parametrize("cpus,workers", [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_workers_fit_the_allocation(cpus, workers):
    assert workers_for(cpus) == workers


def test_rnode_needs_no_prefix_and_node_gets_the_exact_one():
    store = Store("sqlite", "/scratch/p/mlruns.db")
    rnode = server_argv(store.backend_uri(), store.default_artifact_root, 5001, public_prefix("rnode", "c1", 5001), 1)
    assert "--static-prefix" not in rnode
    node = server_argv(store.backend_uri(), store.default_artifact_root, 5001, public_prefix("node", "c1", 5001), 1)
    assert node[node.index("--static-prefix") + 1] == "/node/c1/5001"


def test_store_gate_and_artifacts():
    store = Store("sqlite", "/scratch/my runs/mlruns.db")
    argv = server_argv(store.backend_uri(), store.default_artifact_root, 5001, "", 2)
    got = flags(argv)
    assert argv[0] == "server"
    assert "--backend-store-uri" not in argv and store.backend_uri() not in argv, "the store URI is seen in ps"
    assert got["--default-artifact-root"] == "/scratch/my runs/mlartifacts"
    assert "--no-serve-artifacts" in argv
    assert (got["--host"], got["--port"], got["--workers"], got["--app-name"]) == ("0.0.0.0", "5001", "1", "ood-gate")


def test_registry_only_when_asked():
    assert "--registry-store-uri" not in server_argv("/s/mlruns", "/s/mlruns", 1, "", 1)
    argv = server_argv("/s/mlruns", "/s/mlruns", 1, "", 1, "/tmp/registry")
    assert argv[argv.index("--registry-store-uri") + 1] == "/tmp/registry"


def test_environment():
    env = server_environment("directory", "/s/mlruns")
    assert env["MLFLOW_BACKEND_STORE_URI"] == "/s/mlruns"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["MLFLOW_ALLOW_FILE_STORE"] == "true"
    assert "MLFLOW_ALLOW_FILE_STORE" not in server_environment("sqlite")
    assert not [k for k in env if k.startswith("_MLFLOW")]
