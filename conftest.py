"""Fixtures every test folder shares (tests/ and devportal/tests/): the test users and the test bed's Slurm.

Each starts its service with the same idempotent script bin/test runs, so pytest run on its own, on a
brand-new or rebooted machine, brings up what the tests use instead of relying on an earlier run."""

from __future__ import annotations

import pytest

from devportal.testbed import OTHER, OWNER, run_service


@pytest.fixture(scope="session")
def users():
    run_service("create-users.sh", OWNER, OTHER, timeout=60)
    return OWNER, OTHER


@pytest.fixture(scope="session")
def slurm_cluster(users):
    run_service("start-slurm.sh")


@pytest.fixture(autouse=True)
def _slurm_for_slurm_tests(request):
    """Tests marked slurm submit jobs: the cluster is started (or found running) first."""
    if request.node.get_closest_marker("slurm"):
        request.getfixturevalue("slurm_cluster")
