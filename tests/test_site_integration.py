"""The app at a site: software from Lmod modules in a Slurm job started with
--export=NONE, and a missing module reported on the card."""

from __future__ import annotations

import html

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.testbed import install_modulefiles

MODULE_ENVIRONMENTS = [{"label": "MLflow 3.17", "setup": "module load mlflow/3.17"},
                       {"label": "MLflow 2.22", "setup": "module load mlflow/2.22"}]


@pytest.fixture(scope="module")
def modules():
    return install_modulefiles()


@pytest.mark.slurm
@pytest.mark.parametrize("label,major,version", [("MLflow 3.17", "3", "3.17.2"), ("MLflow 2.22", "2", "2.22.5")])
def test_environment_from_an_lmod_module(launch, site_config, stores, modules, label, major, version):
    env = site_config(major, environments=MODULE_ENVIRONMENTS)
    job = launch({"mlflow_tracking_uri": stores("sqlite", major), "mlflow_environment": label}, env, runner="slurm")
    client = SessionClient(job.wait_running(timeout=180))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert f"MLflow</strong> {version}" in html.unescape(job.session.render_info())
    assert not output_lines(job.session, "ERROR:")


@pytest.mark.slurm
def test_missing_module_ends_the_job_with_an_error(launch, site_config, stores, modules):
    env = site_config("3", environments=[{"label": "MLflow 9.99", "setup": "module load mlflow/9.99"}])
    job = launch({"mlflow_tracking_uri": stores("sqlite")}, env, runner="slurm")
    assert job.wait_finished(timeout=90) < 60
    errors = output_lines(job.session, "ERROR:")
    assert len(errors) == 1 and 'Setting up the software environment "MLflow 9.99" failed' in errors[0]
    assert "mlflow/9.99" in job.session.output(), "Lmod's own message should stand above the ERROR line"
    assert html.escape(errors[0])[:50] in job.session.render_completed()
