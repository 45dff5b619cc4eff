"""Sessions whose MLflow comes from a container-style module (devportal/container_env.py): `python3`,
`python` and `mlflow` are wrappers that do not exec, the real interpreter runs two processes below the job
script's child, and the job has a TMPDIR of its own. Every store kind comes up through it under Slurm, and
Cancel leaves no process, no node-local file and no secret behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from devportal import container_env
from devportal.client import SessionClient
from devportal.testbed import OWNER, make_store

pytestmark = pytest.mark.slurm

RUNS = ["run-00000", "run-00001", "run-00002"]


def module_site(site_config, major: str, **extra) -> dict:
    return site_config(major, environments=container_env.environments(major), **extra)


def parents(pid: int) -> list:
    """The command names from `pid` up to the job's shell."""
    chain = []
    while pid > 1:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            name, rest = fh.read().split(" (", 1)[1].rsplit(") ", 1)
        chain.append(name)
        pid = int(rest.split()[1])
        if name == "slurmstepd":
            break
    return chain


def session_through_the_module(launch, site_config, store: str, major: str = "3", access: str = "write", **extra):
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": access},
                 module_site(site_config, major, **extra), runner="slurm")
    client = SessionClient(job.wait_running(timeout=240))
    client.login()
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    chain = parents(plan["server_pid"])
    # The interpreter, the shell between (where singularity would be), the wrapper (OOD's SCRIPT_PID, named
    # python3 as scripts are), the job's shell: the server is not the job script's child.
    assert chain[0].startswith("python") and chain[1] == "bash" and chain[2] == "python3", chain
    return job, client, plan


def cancel_and_check_nothing_left(job, plan) -> None:
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not job.finished():
        time.sleep(0.25)
    time.sleep(1)
    assert not job.process_commands(), f"processes outlived the session: {job.process_commands()}"
    assert [p for p in plan["scratch"] if os.path.exists(p)] == [], "node-local folders outlived the session"
    assert not (job.session.staged_root / ".gate-secret").exists()
    for folder in {os.path.dirname(p) for p in plan["scratch"] if "/ood-mlflow-job-" in p}:
        assert os.listdir(folder) == [], f"the job's TMPDIR still holds {os.listdir(folder)}"
        shutil.rmtree(folder)  # a site's job_container/tmpfs removes it


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_container_module_serves_and_ends_clean(launch, site_config, users, kind):
    job, client, plan = session_through_the_module(launch, site_config, make_store(kind, "3", OWNER,
                                                                                   name=f"-module-{kind}"))
    assert client.run_names() == RUNS
    assert all("/ood-mlflow-job-" in p for p in plan["scratch"]), plan["scratch"]  # the job's own TMPDIR
    cancel_and_check_nothing_left(job, plan)


def test_a_container_module_serves_a_read_only_copy_and_removes_it(launch, site_config, users):
    """The case that was left behind: an SQLite store of MLflow 2.22's schema, read-only with MLflow 3.17."""
    job, client, plan = session_through_the_module(launch, site_config, make_store("sqlite", "2", OWNER,
                                                                                   name="-module-copy"),
                                                   access="read_only")
    assert client.run_names() == RUNS
    assert len(plan["scratch"]) == 2
    cancel_and_check_nothing_left(job, plan)


def test_a_container_module_serves_a_postgresql_store(launch, site_config, postgres):
    store = postgres.make_store("module_mlflow3", "3")
    job, client, plan = session_through_the_module(launch, site_config, store,
                                                   artifact_roots=[str(postgres.artifacts_of("module_mlflow3"))])
    assert client.run_names() == RUNS
    cancel_and_check_nothing_left(job, plan)
