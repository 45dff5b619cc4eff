"""Runs that Slurm ended, against the test bed's real Slurm and real MLflow (issue #23).

Batch jobs of the researcher start a run in each store and sleep: one is
cancelled, one runs past its time limit (--time=1: Slurm's smallest, seen to
end TIMEOUT within about 80 s here), one array task is cancelled while its
sibling lives on, and one job stays live. Their runs stay RUNNING, as Slurm
leaves them. Then the app is launched on each store: the card lists exactly
the three dead runs; a read-only session writes nothing; a Read and write
session with the form's option leaves them KILLED with the job's end time and
Slurm's state as a tag, and the live runs untouched. The test bed has no Slurm
accounting: the sacct path is tested on its output in
tests/template/ood_mlflow/slurm/test_runs.py.
"""

from __future__ import annotations

import atexit
import json
import pwd
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devportal import postgres as postgres_server
from devportal.ood import as_user
from devportal.testbed import (
    MLFLOW_VENVS,
    OWNER,
    STORES_ROOT,
    Background,
    make_store,
    own_tree,
    start_services,
    tree_digest,
)

STORES = [("sqlite", "3"), ("directory", "3"), ("sqlite", "2"), ("postgresql", "3")]
SUMMARY = "3 runs are RUNNING in MLflow, but their Slurm jobs have ended: 2 CANCELLED, 1 TIMEOUT."

TRAIN = """\
import os, sys, time
import mlflow

uri, key, markers, link = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("demo-classifier")  # made with the store: no two tasks race to create it
job_id = os.environ["SLURM_JOB_ID"]
if "SLURM_ARRAY_TASK_ID" in os.environ:
    job_id = os.environ["SLURM_ARRAY_JOB_ID"] + "_" + os.environ["SLURM_ARRAY_TASK_ID"]
if link == "name":  # CSC's way: the run is named after the job, no tag
    run = mlflow.start_run(run_name=os.environ["SLURM_JOB_ID"])
else:  # the user guide's way: the tag slurm.job_id
    run = mlflow.start_run(run_name="train-" + job_id, tags={"slurm.job_id": job_id})
with open(os.path.join(markers, key + "-" + job_id), "w") as fh:
    fh.write(run.info.run_id)
time.sleep(3600)  # training, until Slurm ends it
"""

# What the test asks MLflow (its public API, as the store's own MLflow) about runs.
RUNS = """\
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
out = {}
for run_id in sys.argv[2:]:
    run = client.get_run(run_id)
    out[run_id] = [run.info.status, run.info.end_time, run.data.tags.get("slurm.state")]
print(json.dumps(out))
"""


@dataclass
class Jobs:
    stores: dict
    dir: Path
    ids: dict = field(default_factory=dict)  # role -> job id as the run names it (12345, 12345_7)
    ended_ms: dict = field(default_factory=dict)  # job id -> squeue's end time

    def run_ids(self, kind, major) -> dict:
        """job id -> the run it started in that store."""
        key = f"{kind}{major}"
        return {m.name[len(key) + 1:]: m.read_text() for m in self.dir.glob(f"{key}-*")}


def squeue(job_ids) -> dict:
    out = subprocess.run(["squeue", "-h", "--states=all", "-j", ",".join(job_ids), "-o", "%i|%T|%e"],
                         capture_output=True, text=True, timeout=30).stdout
    return {line.split("|")[0]: line.split("|")[1:] for line in out.split()}


def local_ms(text: str) -> int:
    return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) * 1000)


def uri_of(kind: str, store: str) -> str:
    return f"sqlite:///{store}" if kind == "sqlite" else store


def prepare(submitted: list) -> Jobs:
    """Make the stores and submit the jobs (their ids into `submitted`), then wait until every run has started
    (in the background: start_early)."""
    start_services("create-users.sh", "start-slurm.sh", "start-postgres.sh")
    stores = {}
    for kind, major in STORES:
        stores[(kind, major)] = (postgres_server.make_store("slurm_runs_m3", major) if kind == "postgresql"
                                 else make_store(kind, major, OWNER, name="-slurm-runs"))
    work = STORES_ROOT / "slurm-runs-jobs"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    markers = work / "markers"
    markers.mkdir(parents=True)
    (work / "train.py").write_text(TRAIN)
    lines = ["#!/bin/bash", "export MLFLOW_ALLOW_FILE_STORE=true"]
    for (kind, major), store in stores.items():
        python = MLFLOW_VENVS[major] / "bin" / "python"
        lines.append(f"'{python}' '{work}/train.py' '{uri_of(kind, store)}' {kind}{major} '{markers}' \"$1\" &")
    (work / "job.sh").write_text("\n".join(lines + ["wait", ""]))
    own_tree(work, OWNER, 0o755)
    jobs = Jobs(stores, markers)
    atexit.register(lambda: subprocess.run(["scancel", *submitted], timeout=30) if submitted else None)

    def submit(*options: str, link: str = "tag") -> str:
        argv = ["sbatch", "--parsable", "-D", str(work), "-o", f"{work}/slurm-%j.out", "-J", "slurm-runs-test",
                *options, f"{work}/job.sh", link]
        done = subprocess.run(as_user(OWNER, argv), capture_output=True, text=True, timeout=60, cwd="/")
        assert done.returncode == 0, done.stderr
        submitted.append(done.stdout.strip().split(";")[0])
        return submitted[-1]

    jobs.ids["timeout"] = submit("--time=1", link="name")  # first: it needs a minute
    # The others live until the module's tests end (they may start half an hour later), unless cancelled.
    jobs.ids["cancelled"] = submit("--time=120")
    array = submit("--time=120", "--array=1-2")
    jobs.ids["array_dead"], jobs.ids["array_live"] = f"{array}_1", f"{array}_2"
    jobs.ids["live"] = submit("--time=120")
    deadline = time.monotonic() + 300
    while len(list(markers.iterdir())) < 5 * len(STORES):  # every run started in every store
        assert time.monotonic() < deadline, f"the runs did not start: {sorted(p.name for p in markers.iterdir())}"
        time.sleep(1)
    subprocess.run(["scancel", jobs.ids["cancelled"], jobs.ids["array_dead"]], check=True, timeout=30)
    return jobs


EARLY: dict = {}  # "work": the Background that prepares the jobs; "submitted": their ids, for the clean-up


def start_early(names: set = frozenset()) -> None:
    """tests/conftest.py calls this when collection ends and this module's tests are to run: the minute and a
    half that Slurm takes to end the time-limit job passes while the tests before this module run."""
    submitted = EARLY["submitted"] = []
    EARLY["work"] = Background("the Slurm-runs jobs", lambda: prepare(submitted))


@pytest.fixture(scope="module")
def slurm_jobs(users, postgres):
    assert "work" in EARLY, "tests/conftest.py did not call start_early"
    try:
        jobs = EARLY["work"].result()
        dead = [jobs.ids[role] for role in ("timeout", "cancelled", "array_dead")]
        deadline = time.monotonic() + 300
        while True:
            states = squeue(dead)
            if [states.get(job_id, ["?"])[0] for job_id in dead] == ["TIMEOUT", "CANCELLED", "CANCELLED"]:
                break
            assert time.monotonic() < deadline, f"the jobs did not end as planned: {states}"
            time.sleep(2)
        jobs.ended_ms = {job_id: local_ms(states[job_id][1]) for job_id in dead}
        live = squeue([jobs.ids["live"], jobs.ids["array_live"]])
        assert {state for state, _ in live.values()} == {"RUNNING"}, live
        yield jobs
    finally:
        subprocess.run(["scancel", *EARLY["submitted"]], timeout=30)


def mlflow_runs(kind: str, major: str, store: str, run_ids) -> dict:
    done = subprocess.run(as_user(OWNER, [str(MLFLOW_VENVS[major] / "bin" / "python"), "-c", RUNS,
                                          uri_of(kind, store), *run_ids]),
                          capture_output=True, text=True, timeout=120, cwd=STORES_ROOT / "slurm-runs-jobs",
                          env={"MLFLOW_ALLOW_FILE_STORE": "true", "PATH": "/usr/bin:/bin",
                               "HOME": pwd.getpwnam(OWNER).pw_dir})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def found_by_the_server(job, timeout: float = 90) -> dict:
    path = job.session.staged_root / "server" / "slurm_runs.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the server wrote no slurm_runs.json:\n{job.session.output()}"
        time.sleep(0.5)
    return json.loads(path.read_text())


def snapshot(kind: str, store: str, postgres):
    return postgres.digest("slurm_runs_m3") if kind == "postgresql" else tree_digest(Path(store).parent)


@pytest.mark.slurm
@pytest.mark.parametrize("kind,major", STORES, ids=[f"{k}-mlflow{m}" for k, m in STORES])
def test_the_card_lists_the_dead_runs_and_the_option_closes_them(slurm_jobs, launch, site_config, postgres, kind,
                                                                  major):
    store = slurm_jobs.stores[(kind, major)]
    runs = slurm_jobs.run_ids(kind, major)
    ids = slurm_jobs.ids
    dead = {ids[role] for role in ("timeout", "cancelled", "array_dead")}
    live = {ids["live"], ids["array_live"]}
    assert set(runs) == dead | live
    assert {s for s, _, _ in mlflow_runs(kind, major, store, runs.values()).values()} == {"RUNNING"}, \
        "Slurm ended the jobs, and their runs stayed RUNNING"
    # The directory store's sessions ask for 4 cores: the look-up runs beside forked web workers.
    env = site_config(major, "export SLURM_CPUS_PER_TASK=4\n" if kind == "directory" else "")

    # Read-only, the option ticked anyway (without OOD's dynamic JS it shows): the card says it, nothing is written.
    before = snapshot(kind, store, postgres)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only", "mlflow_close_slurm_runs": "1"},
                 env)
    job.wait_running(timeout=150)
    found = found_by_the_server(job)
    assert {e["job_id"] for e in found["ended"]} == dead, found
    card = job.session.render_info()
    assert SUMMARY in card
    for job_id in dead:
        assert f"(job {job_id})" in card
    for job_id in live:
        assert f"(job {job_id})" not in card
    assert "tick &quot;Close runs whose Slurm job has ended&quot;" in card
    job.cancel()
    assert snapshot(kind, store, postgres) == before, "a read-only session wrote to the store"
    assert {s for s, _, _ in mlflow_runs(kind, major, store, runs.values()).values()} == {"RUNNING"}

    # Read and write with the option: the dead runs are closed, the live ones untouched.
    runner = "slurm" if (kind, major) == ("sqlite", "3") else "local"  # once from inside a Slurm job
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "write", "mlflow_close_slurm_runs": "1"}, env,
                 runner=runner)
    job.wait_running(timeout=150)
    found = found_by_the_server(job)
    assert found["action"].startswith("This session closed them"), found
    assert "This session closed them" in job.session.render_info()
    after = mlflow_runs(kind, major, store, runs.values())
    for job_id, run_id in runs.items():
        status, end_time, state = after[run_id]
        if job_id in live:
            assert (status, end_time, state) == ("RUNNING", None, None), (job_id, after[run_id])
        else:
            expected = "TIMEOUT" if job_id == ids["timeout"] else "CANCELLED"
            assert (status, end_time, state) == ("KILLED", slurm_jobs.ended_ms[job_id], expected), job_id
    assert "Slurm runs: " in job.session.output()


@pytest.mark.slurm
def test_switched_off_by_the_site_nothing_is_looked_up(slurm_jobs, launch, site_config):
    store = slurm_jobs.stores[("sqlite", "3")]
    job = launch({"mlflow_tracking_uri": store, "mlflow_close_slurm_runs": "1"},
                 site_config("3", slurm_runs={"enabled": False}))
    job.wait_running(timeout=150)
    time.sleep(3)
    assert not (job.session.staged_root / "server" / "slurm_runs.json").exists()
    assert "Slurm runs:" not in job.session.output()
