"""The one-import server: which path a session takes, and each adapter against the real `mlflow server` CLI.

The comparison runs MLflow's own `server` command (tests/tools/server_handover.py)
up to the moment it would start its web server, and the adapter's set-up for
real, for the same session, in each MLflow venv: the web server's environment,
the CLI's set-up calls and the web server's settings must be the same. An
MLflow release that hands its settings over differently fails here.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from devportal.testbed import MLFLOW_VENVS
from ood_mlflow import __version__
from ood_mlflow.server.adapters import CLI, FORCE_VARIABLE, MLFLOW_2, MLFLOW_3, ONE_IMPORT, choose
from ood_mlflow.server.cli import APP_NAME, GATE_APP

TOP = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("version,adapter", [("3.17.2", MLFLOW_3), ("3.17.0", MLFLOW_3), ("2.22.5", MLFLOW_2),
                                             ("2.22.0rc1", MLFLOW_2)])
def test_a_proven_version_gets_one_import(version, adapter):
    choice = choose(version, {})
    assert (choice.path, choice.adapter) == (ONE_IMPORT, adapter)


@pytest.mark.parametrize("version", ["3.18.0", "3.16.1", "2.21.3", "4.0.0", "1.30.0"])
def test_any_other_version_falls_back_to_the_cli_and_says_why(version):
    choice = choose(version, {})
    assert (choice.path, choice.adapter) == (CLI, None)
    assert version in choice.reason and "2.22, 3.17" in choice.reason


def test_the_environment_can_force_the_cli():
    choice = choose("3.17.2", {FORCE_VARIABLE: "cli"})
    assert choice.path == CLI and FORCE_VARIABLE in choice.reason
    assert choose("3.17.2", {FORCE_VARIABLE: "auto"}).path == ONE_IMPORT


@pytest.mark.parametrize("name", ["MLFLOW_STATIC_PREFIX", "MLFLOW_UVICORN_OPTS", "MLFLOW_ENABLE_WORKSPACES"])
def test_a_setting_only_the_cli_reads_gets_the_cli(name):
    choice = choose("3.17.2", {name: "x"})
    assert choice.path == CLI and name in choice.reason
    assert choose("2.22.5", {"MLFLOW_GUNICORN_OPTS": "--timeout 60"}).path == CLI
    assert choose("3.17.2", {name: ""}).path == ONE_IMPORT


def test_more_than_one_worker_forks_them_after_the_one_import():
    for version in ("3.17.2", "2.22.5"):
        choice = choose(version, {}, workers=2)
        assert (choice.path, choice.workers) == (ONE_IMPORT, 2) and "2 web workers" in choice.reason
        assert "forked after the one import" in choice.reason
        assert choose(version, {}, workers=1).workers == 1
    assert choose("3.16.0", {}, workers=2).path == CLI


def test_the_gate_entry_point_is_the_one_staged():
    entry_points = (TOP / f"template/ood_mlflow-{__version__}.dist-info/entry_points.txt").read_text()
    assert f"{APP_NAME} = {GATE_APP}" in entry_points


def handover(mode: str, major: str, flags: dict) -> dict:
    done = subprocess.run([str(MLFLOW_VENVS[major] / "bin/python"), str(TOP / "tests/tools/server_handover.py"), mode,
                           json.dumps(flags)], capture_output=True, text=True, timeout=180,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TOP / "template"), "HOME": "/root",
                               "LANG": "C.UTF-8"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


SESSIONS = {  # (store kind, prefix, registry elsewhere): what sessions differ in
    "sqlite-rnode": ("sqlite", "", False),
    "directory-node-registry": ("directory", "/node/c0123.cluster/5057", True),
}


@pytest.mark.launch  # needs the MLflow venvs
@pytest.mark.parametrize("major,adapter", [("3", MLFLOW_3), ("2", MLFLOW_2)])
@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_the_adapter_hands_over_what_the_cli_does(tmp_path, major, adapter, session):
    kind, prefix, own_registry = SESSIONS[session]
    store = tmp_path / ("mlruns.db" if kind == "sqlite" else "mlruns")
    flags = {"backend_uri": f"sqlite:///{store}" if kind == "sqlite" else str(store),
             "registry_uri": str(tmp_path / "registry") if own_registry else "",
             "artifact_root": str(tmp_path / "mlartifacts"), "store_kind": kind, "port": 5057, "prefix": prefix,
             "cpus": 1}
    cli = handover("cli", major, flags)
    ours = handover("adapter", major, flags)
    assert ours["adapter"] == adapter.name

    cli_env, our_env = dict(cli["environment"]), dict(ours["environment"])
    boot_ids = cli_env.pop("_MLFLOW_SERVER_BOOT_ID", None), our_env.pop("_MLFLOW_SERVER_BOOT_ID", None)
    assert our_env == cli_env
    if major == "3":  # a fresh random id for each server start, on both paths
        assert all(re.fullmatch(r"[0-9a-f]{32}", b or "") for b in boot_ids) and boot_ids[0] != boot_ids[1]
        assert cli_env["_MLFLOW_SGI_NAME"] == "uvicorn"
    if prefix:
        assert cli_env["_MLFLOW_STATIC_PREFIX"] == prefix
    assert ours["calls"] == cli["calls"]
    assert [name for name, _ in cli["calls"]][0] == "mlflow.server.handlers:initialize_backend_stores"
    assert ours["server"] == cli["server"]
    assert set(cli["variables"]) <= set(adapter.cli_variables), "the CLI reads settings the adapter does not know"
    assert cli["server"]["workers"] == 1 and cli["server"]["app"].startswith(GATE_APP)


@pytest.mark.launch  # needs the MLflow venvs
@pytest.mark.parametrize("major,adapter", [("3", MLFLOW_3), ("2", MLFLOW_2)])
def test_the_auth_stand_in_answers_exactly_what_mlflow_asks_of_its_auth_app(major, adapter):
    done = subprocess.run([str(MLFLOW_VENVS[major] / "bin/python"), str(TOP / "tests/tools/auth_names.py")],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == sorted(adapter.auth_names)


@pytest.mark.launch  # needs the MLflow 3.17 venv, which has no Flask-WTF: its auth app cannot be imported
def test_with_the_stand_in_a_runs_search_imports_nothing(tmp_path):
    def searches(mode):
        done = subprocess.run([str(MLFLOW_VENVS["3"] / "bin/python"), str(TOP / "tests/tools/auth_imports.py"),
                               str(tmp_path / mode), mode], capture_output=True, text=True, timeout=180, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TOP / "template"), "HOME": str(tmp_path),
                                   "LANG": "C.UTF-8"})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)
    (tmp_path / "plain").mkdir()
    (tmp_path / "stand-in").mkdir()
    plain, ours = searches("plain"), searches("stand-in")
    assert plain["imports"] == 20, plain  # MLflow alone: one failing import of its auth app per search
    assert ours["imports"] == 0 and "auth is off" in ours["auth"], ours
    print(f"runs search: {plain['ms_per_search']} ms with MLflow's import, {ours['ms_per_search']} ms without")


def test_the_stand_in_leaves_an_importable_auth_app_alone(monkeypatch):
    import sys
    import types

    from ood_mlflow.server import auth_stand_in
    real = types.ModuleType("mlflow.server.auth")
    monkeypatch.setitem(sys.modules, "mlflow.server.auth", real)
    assert auth_stand_in.install(MLFLOW_3.auth_names, importer=lambda name: real) is False
    assert sys.modules["mlflow.server.auth"] is real

    def missing(name):
        raise ImportError("No module named 'flask_wtf'")
    assert auth_stand_in.install(MLFLOW_3.auth_names, importer=missing) is True
    stand_in = sys.modules["mlflow.server.auth"]
    assert not stand_in.auth_config and stand_in.filter_experiment_ids(["1", "2"]) == ["1", "2"]
    assert stand_in.get_graphql_authorization_middleware() == []
    assert auth_stand_in.install(MLFLOW_2.auth_names, importer=missing) is False  # 2.22 asks nothing of it
