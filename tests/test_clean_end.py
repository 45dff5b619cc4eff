"""However a session ends, nothing of it is left: no process, no node-local file, no secret in its folder.

The ends: Cancel (scancel through the test bed's Slurm, whose proctrack/linuxproc loses processes whose
parent died; SIGTERM to the job's processes when run directly, as Slurm sends it), the time limit, a failed
start (the server dying while it starts; an upgrade of the read-only copy failing) and a crash of the server;
and Cancel while a directory store is converted to SQLite. Each with the plain environment (the test venv's
python3 is the server) and a container-style module's (devportal/container_env.py: the server runs two
processes below wrappers that do not exec). A read-only session on an SQLite store of MLflow 2.22's schema
opened with MLflow 3.17 makes the most: a node-local upgraded copy of the store, and the server's private
temp folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from devportal import container_env
from devportal.jobs import SlurmJob
from devportal.ood import stage
from devportal.testbed import (
    OWNER,
    STORES_ROOT,
    Background,
    make_store,
    start_services,
    write_demo_store,
    write_site_config,
)

ENVIRONMENTS = ["plain", "wrapped"]
TIME_LIMIT_REASON = "The session reached its time limit. Launch a new one with more hours if you need longer."


def site_for(site_config, env: str, extra_setup: str = "") -> dict:
    if env == "wrapped":
        return site_config("3", environments=container_env.environments("3", extra_setup))
    return site_config("3", extra_setup)


SHARED: dict = {"lock": threading.Lock()}


def shared_store() -> str:
    """One store of MLflow 2.22's schema for the module's read-only sessions, made once: they never write it."""
    with SHARED["lock"]:
        if "store" not in SHARED:
            SHARED["store"] = make_store("sqlite", "2", OWNER, name="-clean-end")
    return SHARED["store"]


def read_only_copy_session(launch, site_config, runner: str, env: str = "plain", wait: bool = True):
    store = shared_store()
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"}, site_for(site_config, env),
                 runner=runner)
    if not wait:
        return job, store
    job.wait_running(timeout=180)
    return job, plan_of(job)


def plan_of(job) -> dict:
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    assert len(plan["scratch"]) == 2 and all(os.path.isdir(p) for p in plan["scratch"]), plan["scratch"]
    assert plan["server_pid"] > 1
    return plan


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
    assert_no_secret_and_empty_job_tmpdir(job, plan["scratch"])


def assert_no_secret_and_empty_job_tmpdir(job, scratch) -> None:
    root = job.session.staged_root
    assert not (root / ".gate-secret").exists() and not (root / "connection.yml").exists(), \
        "the session folder still holds the secret"
    for folder in {os.path.dirname(p) for p in scratch if "/ood-mlflow-job-" in p}:
        assert os.listdir(folder) == [], f"the job's TMPDIR still holds {os.listdir(folder)}"
        shutil.rmtree(folder)  # a site's job_container/tmpfs removes it


def job_tmpdir(job) -> str:
    """The wrapped environment's TMPDIR for this Slurm job (container_env.setup)."""
    return f"/tmp/ood-mlflow-job-{job.job_id}"


@pytest.mark.slurm
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cancel_through_slurm_leaves_nothing(launch, site_config, env):
    job, plan = read_only_copy_session(launch, site_config, "slurm", env)
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    wait_ended(job)
    assert_nothing_left(job, plan)
    assert not (job.session.staged_root / "job_exit_reason").exists(), "a Cancel was reported as the time limit"
    assert "stopped before its time ran out" in job.session.render_completed()


EARLY: dict = {}  # "work": the Background that starts the time-limit sessions; "jobs": theirs, for the clean-up


def start_early(names: set) -> None:
    """tests/conftest.py calls this when collection ends: the time-limit sessions start then, in the background,
    so the minute and a half Slurm takes to end them passes while the tests before this module run."""
    if "test_the_time_limit_leaves_nothing_and_the_card_says_why" in names:
        jobs = EARLY["jobs"] = []
        EARLY["work"] = Background("the time-limit sessions", lambda: early_time_limit_sessions(jobs))


def early_time_limit_sessions(jobs: list) -> dict:
    """The time-limit sessions, launched as the launch fixture does (outside pytest's fixtures: in a thread)."""
    start_services("create-users.sh", "start-slurm.sh")
    work = Path(tempfile.mkdtemp(prefix="ood-mlflow-time-limit-"))

    def site_config(major, extra_setup="", **overrides):
        return write_site_config(work / f"site-{len(list(work.iterdir()))}.yml", major, extra_setup, **overrides)

    def launch(values, env, runner):
        jobs.append(SlurmJob(stage(values, user=OWNER, env=env)))
        return jobs[-1].start()

    return time_limit_sessions(launch, site_config)


def time_limit_sessions(launch, site_config) -> dict:
    """Both environments at once, each with its time limit lowered to the soonest it has not passed."""
    sessions = {env: read_only_copy_session(launch, site_config, "slurm", env) for env in ENVIRONMENTS}
    for job, _plan in sessions.values():
        minutes = int(time.monotonic() - job.started) // 60 + 1
        subprocess.run(["scontrol", "update", f"JobId={job.job_id}", f"TimeLimit={minutes}"], check=True,
                       timeout=30)
    return sessions


@pytest.mark.slurm
def test_the_time_limit_leaves_nothing_and_the_card_says_why():
    """Slurm ends the job at a limit an administrator lowered, so the form's hours (1) are not when it ends
    (the sessions were started by start_early, when collection ended)."""
    assert "work" in EARLY, "tests/conftest.py did not call start_early"
    try:
        check_time_limit_ends(EARLY["work"].result())
    finally:
        for job in EARLY["jobs"]:
            job.cancel()


def check_time_limit_ends(sessions: dict) -> None:
    for env, (job, plan) in sessions.items():
        wait_ended(job, timeout=150)  # the limit, then slurmctld's check (every 30 s)
        assert "DUE TO TIME LIMIT" in job.session.output(), (env, job.session.output()[-2000:])
        assert_nothing_left(job, plan)
        reason = job.session.staged_root / "job_exit_reason"
        assert reason.exists() and reason.read_text() == TIME_LIMIT_REASON + "\n", env
        assert "reached its time limit" in job.session.render_completed(), env


@pytest.mark.slurm
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_server_dying_while_it_starts_leaves_nothing(launch, site_config, env):
    job, _ = read_only_copy_session(launch, site_config, "slurm", env, wait=False)
    plan_file = job.session.staged_root / "plan.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (plan_file.exists() and json.loads(plan_file.read_text())
                                               .get("server_pid")):
        time.sleep(0.05)
    plan = plan_of(job)
    os.kill(plan["server_pid"], signal.SIGKILL)  # while MLflow imports, before the UI answers
    wait_ended(job)
    assert "ERROR: The MLflow server stopped while starting" in job.session.output(), job.session.output()[-2000:]
    assert_nothing_left(job, plan)


@pytest.mark.slurm
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_failed_upgrade_of_the_read_only_copy_leaves_nothing(launch, site_config, env):
    """The copy is made before the upgrade that fails, and before any Plan names it. The session gets a
    node-local space of its own ($LOCAL_SCRATCH, as CSC's NVMe), so what it leaves there is its own."""
    local = STORES_ROOT / f"clean-end-local-scratch-{env}"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(mode=0o700)
    shutil.chown(local, OWNER, OWNER)
    store = make_store("sqlite", "2", OWNER, name=f"-clean-end-bad-upgrade-{env}")
    with sqlite3.connect(store) as db:  # a table MLflow 3's migrations create: the upgrade stops there
        db.execute("CREATE TABLE logged_models (taken INTEGER)")
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"},
                 site_for(site_config, env, f"export LOCAL_SCRATCH={local}\n"), runner="slurm")
    wait_ended(job)
    assert "ERROR: MLflow could not upgrade the schema" in job.session.output(), job.session.output()[-2000:]
    assert not job.process_commands(), f"processes outlived the session: {job.process_commands()}"
    assert os.listdir(local) == [], f"node-local files outlived the session: {os.listdir(local)}"
    assert_no_secret_and_empty_job_tmpdir(job, [os.path.join(job_tmpdir(job), "x")] if env == "wrapped" else [])


def tree_digest(top: str) -> dict:
    """{relative path: (mode, sha256)} of every file and folder under `top`."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.isfile(path) else ""
            found[os.path.relpath(path, top)] = (info.st_mode, info.st_mtime_ns, digest)
    return found


@pytest.fixture(scope="module")
def big_directory_store(users):
    """A directory store whose conversion takes long enough to be cancelled halfway (made once)."""
    store = make_store("file", "3", OWNER, name="-clean-end-convert")
    write_demo_store("3", store, Path(store).parent, OWNER, "--experiment", "many", "--runs", "150")
    return store


@pytest.mark.slurm
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cancel_while_converting_leaves_no_work_file_and_the_store_unchanged(launch, site_config, env,
                                                                           big_directory_store):
    folder = Path(big_directory_store).parent
    before = tree_digest(str(folder))
    job = launch({"mlflow_tracking_uri": big_directory_store, "mlflow_store_access": "convert"},
                 site_for(site_config, env), runner="slurm")
    progress = job.session.staged_root / "conversion.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (progress.exists() and
                                               json.loads(progress.read_text() or "{}").get("stage") == "converting"):
        assert not job.finished(), job.session.output()[-2000:]
        time.sleep(0.1)
    assert [name for name in os.listdir(folder) if name.startswith(".ood-mlflow-converting-")], \
        "the conversion's work folder was not seen while it converted"
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    wait_ended(job)
    assert "Converted " not in job.session.output(), "the conversion finished before Cancel: make the store bigger"
    assert not job.process_commands(), f"processes outlived the session: {job.process_commands()}"
    assert sorted(os.listdir(folder)) == ["mlruns"], "a conversion work file or a converted file was left"
    assert tree_digest(str(folder)) == before, "the directory store changed"
    assert_no_secret_and_empty_job_tmpdir(job, [os.path.join(job_tmpdir(job), "x")] if env == "wrapped" else [])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sigterm_to_the_job_leaves_nothing(launch, site_config, env):
    job, plan = read_only_copy_session(launch, site_config, "local", env)
    os.killpg(job.proc.pid, signal.SIGTERM)
    wait_ended(job)
    assert_nothing_left(job, plan)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_crashed_server_leaves_nothing(launch, site_config, env):
    job, plan = read_only_copy_session(launch, site_config, "local", env)
    os.kill(plan["server_pid"], signal.SIGKILL)
    wait_ended(job)
    assert_nothing_left(job, plan)
