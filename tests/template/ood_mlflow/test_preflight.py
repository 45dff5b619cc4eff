"""Making the Plan from the settings and the parsed store, without root, MLflow or a store on disk
(preflight.draft_plan is pure; the launch tests run the rest of make_plan)."""

from __future__ import annotations

import pytest

from ood_mlflow.preflight import draft_plan
from ood_mlflow.settings import Settings
from ood_mlflow.stores.access import READ_ONLY, UPGRADE, WRITE
from ood_mlflow.stores.uri import parse_store

NOW = 1_800_000_000.0


def draft(uri="/scratch/p/mlruns", access=WRITE, version="3.17.2", decodes=True, **site):
    conf = Settings(tracking_uri=uri, store_access=access, **site)
    return draft_plan(conf, parse_store(uri, "/home/u"), access, version, decodes, "c1234", 43210, NOW)


def test_a_directory_store_is_opened_by_its_path_and_keeps_its_artifacts_in_it():
    plan = draft()
    assert (plan.store_kind, plan.store_path, plan.backend_uri) == ("directory", "/scratch/p/mlruns",
                                                                    "/scratch/p/mlruns")
    assert plan.artifact_root == "/scratch/p/mlruns" and not plan.read_only


def test_an_sqlite_store_keeps_its_artifacts_beside_the_file():
    plan = draft("/scratch/p/m.db")
    assert plan.backend_uri == "sqlite:////scratch/p/m.db" and plan.artifact_root == "/scratch/p/mlartifacts"


@pytest.mark.parametrize("access, read_only", [(WRITE, False), (READ_ONLY, True), (UPGRADE, False)])
def test_only_the_read_only_mode_makes_a_read_only_session(access, read_only):
    assert draft("/scratch/p/m.db", access).read_only is read_only


@pytest.mark.parametrize("version, needs", [("3.17.2", True), ("3.12.0", False), ("2.22.1", False)])
def test_training_code_is_told_to_opt_in_to_directory_stores_from_mlflow_3_13(version, needs):
    assert draft(version=version).file_store_opt_in is needs
    assert draft("/scratch/p/m.db", version=version).file_store_opt_in is False


def test_the_session_answers_where_the_sites_proxy_says_until_its_time_is_up():
    rnode = draft(hours=4)
    assert (rnode.prefix, rnode.portal_path, rnode.port) == ("", "/rnode/c1234/43210", 43210)
    assert rnode.ends_at == int(NOW) + 4 * 3600
    node = draft(proxy="node")
    assert (node.prefix, node.portal_path, node.ends_at) == ("/node/c1234/43210", "/node/c1234/43210", 0)


def test_the_plan_carries_the_settings_whole():
    plan = draft(trusted_proxies=("10.1.2.0/24",), default_view="genai", close_slurm_runs=True)
    assert plan.settings.trusted_proxies == ("10.1.2.0/24",) and plan.settings.default_view == "genai"
    assert plan.slurm_runs == "close"
    assert draft(close_slurm_runs=True, slurm_runs_enabled=False).slurm_runs == "off"
