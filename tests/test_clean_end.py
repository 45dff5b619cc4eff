"""However a session ends, nothing of it is left: no process, no node-local file, no secret in its folder.

The ends: Cancel (scancel through the test bed's Slurm, whose proctrack/linuxproc loses processes whose
parent died; SIGTERM to the job's processes when run directly, as Slurm sends it) and a crash of the server.
A read-only session on an SQLite store of MLflow 2.22's schema opened with MLflow 3.17 makes the most: a
node-local upgraded copy of the store, and the server's private temp folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from devportal.testbed import OWNER, make_store


def read_only_copy_session(launch, site_config, runner: str):
    store = make_store("sqlite", "2", OWNER, name=f"-clean-end-{runner}")
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"}, site_config("3"), runner=runner)
    job.wait_running(timeout=180)
    plan = json.loads((job.session.staged_root / "mlflow_session.json").read_text())
    assert len(plan["scratch"]) == 2 and all(os.path.isdir(p) for p in plan["scratch"]), plan["scratch"]
    assert plan["server_pid"] > 1
    return job, plan


def wait_ended(job, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not job.finished():
        time.sleep(0.25)
    assert job.finished(), "the job did not end"
    time.sleep(1)  # what the job's end left running would still be running now


def assert_nothing_left(job, plan) -> None:
    left = {pid: argv for pid, argv in job.process_commands().items()}
    assert not left, f"processes of the session outlived it: {left}"
    assert not os.path.exists(f"/proc/{plan['server_pid']}") or \
        open(f"/proc/{plan['server_pid']}/stat").read().split(") ")[1][0] == "Z", "the server outlived the job"
    assert [p for p in plan["scratch"] if os.path.exists(p)] == [], "node-local folders outlived the session"
    root = job.session.staged_root
    assert not (root / ".gate-secret").exists() and not (root / "connection.yml").exists(), \
        "the session folder still holds the secret"


@pytest.mark.slurm
def test_cancel_through_slurm_leaves_nothing(launch, site_config):
    job, plan = read_only_copy_session(launch, site_config, "slurm")
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    wait_ended(job)
    assert_nothing_left(job, plan)


def test_sigterm_to_the_job_leaves_nothing(launch, site_config):
    job, plan = read_only_copy_session(launch, site_config, "local")
    os.killpg(job.proc.pid, signal.SIGTERM)
    wait_ended(job)
    assert_nothing_left(job, plan)


def test_a_crashed_server_leaves_nothing(launch, site_config):
    job, plan = read_only_copy_session(launch, site_config, "local")
    os.kill(plan["server_pid"], signal.SIGKILL)
    wait_ended(job)
    assert_nothing_left(job, plan)
