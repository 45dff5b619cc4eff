"""Fixtures shared by the whole suite: MLflow environments, site configurations,
test users, stores made by real MLflow, and jobs that are always cleaned up."""

from __future__ import annotations

import pytest

from devportal.jobs import LocalJob, SlurmJob
from devportal.ood import stage
from devportal.testbed import OWNER, make_store, run_service, write_site_config

# Tests that use these fixtures launch sessions as the test users: they need the whole test bed.
NEEDS_THE_TEST_BED = {"launch", "users", "stores", "postgres"}


def pytest_collection_modifyitems(items):
    for item in items:
        if NEEDS_THE_TEST_BED & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slurm") \
                or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.launch)


def pytest_collection_finish(session):
    """A test module whose setup mostly waits on Slurm's clock (a time limit takes a minute and a half) has a
    start_early(names): it starts that in the background once the run knows which of its tests will run."""
    if session.config.option.collectonly:
        return
    selected = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if hasattr(module, "start_early"):
            selected.setdefault(module, set()).add(getattr(item, "originalname", item.name))
    for module, names in selected.items():
        module.start_early(names)


@pytest.fixture
def site_config(tmp_path):
    def make(major: str = "3", extra_setup: str = "", **overrides) -> dict:
        return write_site_config(tmp_path / f"site-{major}-{len(list(tmp_path.glob('site-*')))}.yml", major,
                                 extra_setup, **overrides)
    return make


@pytest.fixture(scope="session")
def stores(users):
    """Stores per (kind, MLflow major), made once per test run."""
    made = {}

    def get(kind: str, major: str = "3") -> str:
        if (kind, major) not in made:
            made[(kind, major)] = make_store(kind, major, OWNER)
        return made[(kind, major)]
    return get


@pytest.fixture
def launch(users, tmp_path):
    """launch(values, env, runner="local"|"slurm") stages a session as OWNER and starts its job.

    Every job is cancelled, and its processes killed, when the test ends."""
    jobs = []

    def start(values: dict, env: dict, runner: str = "local", user: str = OWNER):
        session = stage(values, user=user, env=env)
        job = (SlurmJob if runner == "slurm" else LocalJob)(session).start()
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.cancel()


@pytest.fixture(scope="session")
def postgres(users):
    """The test bed's own PostgreSQL cluster, started (or found running) once per test run."""
    from devportal import postgres as server
    run_service("start-postgres.sh", OWNER)
    assert server.is_running()
    return server
