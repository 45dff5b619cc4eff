"""The user guide's Slurm example works as written: submitted through Slurm as a user, with the
site's module, it logs a run (metrics, a param, an artifact beside the store) that the store holds.
For PostgreSQL, from an empty database (the researcher's ~/.pgpass as the guide says) to a
session that shows the run."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from devportal.client import SessionClient
from devportal.testbed import OWNER, STORES_ROOT, install_modulefiles, own_tree

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user-guide.md"
SCRATCH = "/scratch/project_2001234"
GUIDE_DATABASE = "postgresql://my_user@db-host.example.org:5432/my_database"


def example(name: str) -> str:
    """The code block that follows `<!-- user-guide: name -->` in the guide."""
    found = re.search(rf"<!-- user-guide: {re.escape(name)} -->\n```\w*\n(.*?)```", GUIDE.read_text(), re.S)
    assert found, f"no {name} example in the user guide"
    return found.group(1)


def as_directory_store(script: str) -> str:
    """The example with the guide's directory-store lines in place of the SQLite line."""
    lines = [line for line in script.splitlines() if "sqlite:" not in line]
    return "\n".join(re.sub(r"^#   (export )", r"\1", line) for line in lines) + "\n"


def test_the_pgpass_example_is_what_libpq_reads():
    line = example("pgpass").splitlines()[0]
    assert re.fullmatch(r"echo '[^:']+:\d+:[^:']+:[^:']+:[^:']+' >> ~/\.pgpass", line), line
    assert "chmod 600 ~/.pgpass" in example("pgpass")


@pytest.mark.slurm
@pytest.mark.parametrize("kind", ["sqlite", "directory", "postgresql"])
def test_the_slurm_example_logs_a_run(request, users, kind):
    install_modulefiles()
    scratch = STORES_ROOT / f"guide-scratch-{kind}"
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    job_dir = scratch / "job"
    job_dir.mkdir(parents=True)
    database = ""
    if kind == "postgresql":  # an empty database, and the researcher's ~/.pgpass (made by the test bed)
        postgres = request.getfixturevalue("postgres")
        postgres.create_database("guide_database")
        database = postgres.uri("guide_database")
    for name in ("train.sh", "train.py"):  # the site's scratch path is this test's folder
        source = "train-postgresql.sh" if kind == "postgresql" and name == "train.sh" else name
        text = example(source).replace(SCRATCH, str(scratch))
        if kind == "postgresql":
            assert GUIDE_DATABASE in text or name == "train.py"
            text = text.replace(GUIDE_DATABASE, database)
        (job_dir / name).write_text(as_directory_store(text) if kind == "directory" and name == "train.sh" else text)
    own_tree(scratch, OWNER, 0o755)
    # As the researcher types it, in a login shell (where `module` is defined and sbatch passes it on).
    submitted = subprocess.run(["runuser", "-l", OWNER, "-c", f"cd '{job_dir}' && sbatch --parsable train.sh"],
                               capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 180
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the example job did not finish"
        time.sleep(1)
    log = (job_dir / f"slurm-{job_id}.out").read_text() if (job_dir / f"slurm-{job_id}.out").exists() else ""
    if kind == "postgresql":
        rows = postgres.sql(f"SELECT run_uuid, artifact_uri FROM runs WHERE name = 'job-{job_id}'", "guide_database")
        assert len(rows) == 1, f"the example logged no run to the database:\n{log}"
        (run_id, artifact_uri), = rows
        assert postgres.sql(f"SELECT count(*) FROM metrics WHERE run_uuid = '{run_id}' AND key = 'loss'",
                            "guide_database") == [["10"]]
    elif kind == "directory":
        metas = list((scratch / "mlruns").glob("*/*/meta.yaml"))
        run = next((m.parent for m in metas if f"run_name: job-{job_id}" in m.read_text()), None)
        assert run, f"the example logged no run to the directory store:\n{log}"
        assert len((run / "metrics" / "loss").read_text().splitlines()) == 10
        artifact_uri = re.search(r"^artifact_uri: (.*)$", (run / "meta.yaml").read_text(), re.M).group(1)
    else:
        store = scratch / "mlruns.db"
        assert store.exists(), f"the example made no store:\n{log}"
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            (run_id, artifact_uri), = db.execute("SELECT run_uuid, artifact_uri FROM runs WHERE name = ?",
                                                 (f"job-{job_id}",)).fetchall()
            points = db.execute("SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = 'loss'", (run_id,))
            assert points.fetchone()[0] == 10
            # The tag line that links the run to its job, for the card's runs whose Slurm job has ended.
            tag = db.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'slurm.job_id'", (run_id,))
            assert tag.fetchall() == [(job_id,)]
    assert artifact_uri.startswith(str(scratch / "mlartifacts" / "my-experiment")), artifact_uri
    assert os.path.isfile(os.path.join(artifact_uri, "notes.txt")), log

    if kind == "postgresql":  # then the app, launched with the same URI, shows the run
        env = request.getfixturevalue("site_config")("3", artifact_roots=[str(scratch)])
        job = request.getfixturevalue("launch")({"mlflow_tracking_uri": database}, env)
        client = SessionClient(job.wait_running(timeout=150))
        client.login()
        assert client.run_names("my-experiment") == [f"job-{job_id}"]
