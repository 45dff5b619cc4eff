"""A read-only session's copy of a store goes to the job's node-local space, $LOCAL_SCRATCH where the site
sets it (CSC's NVMe), else $TMPDIR; a copy that would not fit ends the job with one ERROR line that names the
size and the site's way to get more, before anything is copied, and the store is unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devportal.client import SessionClient
from devportal.testbed import OWNER, STORES_ROOT, make_store, tree_digest
from tests.test_bad_input import fails_with

HINT = "choose a partition with NVMe; the job gets it with --gres=nvme:<GB>"


@pytest.fixture
def small_tmpdir(users):
    """A job TMPDIR of 16 MiB (a tmpfs), too small for a copy and its margin."""
    folder = STORES_ROOT / "small-tmpdir"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=1777", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_copy_that_does_not_fit_ends_the_job_and_names_the_way_to_more(launch, site_config, small_tmpdir):
    store = make_store("sqlite", "2", OWNER, name="-node-local-small")
    before = tree_digest(Path(store).parent)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"},
                 site_config("3", f"export TMPDIR={small_tmpdir}\n", node_local_hint=HINT))
    error = fails_with(job, "not enough node-local space for a read-only copy", f"in {small_tmpdir}", HINT)
    assert "MB free" in error
    assert tree_digest(Path(store).parent) == before
    assert list(small_tmpdir.iterdir()) == [], "something was copied before the check"


def test_the_copy_goes_to_local_scratch_where_the_site_sets_it(launch, site_config, users):
    store = make_store("sqlite", "2", OWNER, name="-node-local-nvme")
    nvme = STORES_ROOT / "local-scratch"
    nvme.mkdir(parents=True, exist_ok=True)
    nvme.chmod(0o1777)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"},
                 site_config("3", f"export LOCAL_SCRATCH={nvme}\n"))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    assert plan["scratch"] and all(p.startswith(f"{nvme}/ood-mlflow-") for p in plan["scratch"]), plan["scratch"]
