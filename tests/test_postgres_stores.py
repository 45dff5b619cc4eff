"""PostgreSQL tracking stores, in a real PostgreSQL server (the test bed's own cluster).

Stores are written into it by real MLflow 3.17.2 and 2.22.x as the researcher's
role, whose password only ~/.pgpass holds. Sessions are launched through the
portal emulation as the researcher; a failed launch must end within 60 s with one
ERROR line, and the database (pg_dump of its schema and data) and the server's
list of databases must be unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.ood import RenderError, dataroot_for, stage
from devportal.testbed import MLFLOW_VENVS, OWNER, STORES_ROOT, mlflow_python
from tests.test_bad_input import fails_with

RUNS = ["run-00000", "run-00001", "run-00002"]


@pytest.fixture(scope="module")
def pg_stores(postgres):
    """Stores written by MLflow 3.17 and 2.22, one database each, made once."""
    made = {}

    def get(major: str) -> str:
        if major not in made:
            made[major] = postgres.make_store(f"mlflow{major}_store", major)
        return made[major]
    return get


def pg_site(site_config, major="3", **overrides):
    # A database has no folder: its artifacts are read from the site's artifact roots.
    return site_config(major, artifact_roots=[str(STORES_ROOT)], **overrides)


def job_commands(job) -> list:
    """The command lines of the job's processes, as every user of the node sees them in ps."""
    return [" ".join(argv) for argv in job.process_commands().values()]


def database_name(uri: str) -> str:
    return uri.rsplit("/", 1)[1].split("?")[0]


@pytest.mark.parametrize("major", ["3", "2"])
def test_postgres_store_is_served_to_its_owner(launch, site_config, postgres, pg_stores, major):
    store = pg_stores(major)
    before = postgres.digest(database_name(store))
    job = launch({"mlflow_tracking_uri": store}, pg_site(site_config, major))
    info = job.wait_running(timeout=150)
    client = SessionClient(info)
    assert client.request("GET", "/")[0] == 401
    client.login()
    assert client.run_names() == RUNS
    run = client.api("POST", "runs/search", {"experiment_ids": [client.experiment_id()], "max_results": 1})[1]
    status, _, body = client.request("GET", f"/get-artifact?path=notes.txt&run_uuid={run['runs'][0]['info']['run_id']}")
    assert status == 200 and body.startswith(b"Notes for run-"), (status, body[:200])

    commands = job_commands(job)
    assert commands and not [c for c in commands if "postgresql" in c], f"the store's URI is in ps: {commands}"
    # MLflow's job runner and periodic tasks (huey consumers) would share work across every session of the database.
    assert not [c for c in commands if "huey" in c or "mlflow.server.jobs" in c], f"a job runner started: {commands}"
    password = postgres.researcher_password()
    session = job.session
    for text in [session.output(), session.connection_file.read_text(), *commands, session.render_info(),
                 (session.staged_root / "plan.json").read_text()]:
        assert password not in text
    assert "mlflow.set_tracking_uri(" in session.render_info() and store in session.render_info()
    assert postgres.digest(database_name(store)) == before, "opening and browsing the store changed it"
    assert not output_lines(session, "ERROR:")


def test_read_only_is_enforced_by_the_database(launch, site_config, postgres):
    store = postgres.make_store("mlflow3_read_only", "3")
    name = database_name(store)
    before = postgres.digest(name)
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": "read_only"}, pg_site(site_config))
    info = job.wait_running(timeout=150)
    client = SessionClient(info)
    client.login()
    assert client.run_names() == RUNS
    experiment = client.experiment_id()
    status, answer = client.api("POST", "experiments/update", {"experiment_id": experiment, "new_name": "changed"})
    assert status == 403 and "read-only" in answer["message"], (status, answer)  # what the UI shows
    assert "read-only at the database server" in job.session.render_info()

    # Past the gate, the session's own connections refuse writes: MLflow itself, with the URI the session uses.
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    write = ("import sys\nfrom mlflow.tracking import MlflowClient\n"
             "MlflowClient(tracking_uri=sys.argv[1]).rename_experiment(sys.argv[2], 'changed')\n")
    done = subprocess.run(["runuser", "-u", OWNER, "--", str(mlflow_python("3")), "-c", write,
                           plan["backend_uri"], experiment], capture_output=True, text=True, cwd="/tmp", timeout=120)
    assert done.returncode != 0 and "read-only transaction" in done.stderr, done.stderr[-2000:]
    assert postgres.sql("SELECT name FROM experiments ORDER BY experiment_id", name) == [["Default"],
                                                                                         ["demo-classifier"]]
    assert postgres.digest(name) == before, "a read-only session changed the database"


def prepare(postgres, case: str) -> tuple:
    """The URI to type for a broken case, and the database it names (made here, if any)."""
    if case == "unreachable":
        return postgres.uri("mlflow3_store", port=1), ""
    if case == "unknown-host":
        return "postgresql://ood-alice@db-host.invalid:5432/mlflow3_store", ""
    if case == "unknown-role":
        return postgres.uri("mlflow3_store", user="nobody_here"), "mlflow3_store"
    if case == "missing-database":
        return postgres.uri("no_such_database"), ""
    if case == "not-mlflow":
        postgres.create_database("not_mlflow")
        postgres.sql('CREATE TABLE results (x int); ALTER TABLE results OWNER TO "ood-alice"', "not_mlflow")
        return postgres.uri("not_mlflow"), "not_mlflow"
    if case == "empty":
        postgres.create_database("empty_database")
        return postgres.uri("empty_database"), "empty_database"
    if case == "no-privileges":  # a store whose tables belong to another role, who granted nothing
        postgres.make_store("foreign_store", "3")
        postgres.sql("DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = "
                     "'public' LOOP EXECUTE format('ALTER TABLE %I OWNER TO postgres', t.tablename); END LOOP; END $$",
                     "foreign_store")
        return postgres.uri("foreign_store"), "foreign_store"
    if case == "no-driver":
        return postgres.uri("mlflow3_store"), "mlflow3_store"
    if case == "missing-driver":
        return postgres.uri("mlflow3_store", scheme="postgresql+psycopg2"), "mlflow3_store"
    raise AssertionError(case)


@pytest.mark.parametrize("case,words", [
    ("unreachable", ["cannot be reached from this node", "127.0.0.1:1", "Connection refused"]),
    ("unknown-host", ["name 'db-host.invalid' is unknown on this node"]),
    ("unknown-role", ["refused the login of nobody_here", "~/.pgpass", "chmod 600"]),
    ("missing-database", ["has no database 'no_such_database'"]),
    ("not-mlflow", ["holds tables but no MLflow store"]),
    ("empty", ["is empty", "does not create one", "Log a first run"]),
    ("no-privileges", ["could not be read", "permission denied", "GRANT SELECT"]),
    ("no-driver", ["has no PostgreSQL driver", "psycopg[binary]", "psycopg2-binary"]),
    ("missing-driver", ["asks for the PostgreSQL driver psycopg2", "psycopg2-binary"]),
])
def test_broken_postgres_stores(launch, site_config, postgres, pg_stores, case, words):
    pg_stores("3")
    typed, database = prepare(postgres, case)
    before = (postgres.databases(), postgres.digest(database) if database else "")
    env = pg_site(site_config)
    if case == "no-driver":
        venv = MLFLOW_VENVS["3"].parent / "venv-mlflow3-nodriver"
        env = pg_site(site_config, environments=[{"label": "MLflow 3.17 without drivers",
                                                  "setup": f"export PATH={venv}/bin:$PATH\n"}])
    fails_with(launch({"mlflow_tracking_uri": typed}, env), *words)
    assert (postgres.databases(), postgres.digest(database) if database else "") == before, "the database changed"


@pytest.mark.parametrize("store_major,env_major,access,words", [
    ("2", "3", "write", ["has schema revision", "MLflow 3.17.2 expects", "would migrate it", "pg_dump"]),
    ("2", "3", "read_only", ["opening it even read-only would migrate it"]),
    ("2", "3", "upgrade", ["upgrades only SQLite stores", "pg_dump --format=custom", "mlflow db upgrade"]),
    ("3", "2", "write", ["was written by a newer MLflow than 2.22"]),
    ("3", "2", "read_only", ["was written by a newer MLflow than 2.22"]),
])
def test_schema_revision_rule(launch, site_config, postgres, pg_stores, store_major, env_major, access, words):
    store = pg_stores(store_major)
    before = postgres.digest(database_name(store))
    fails_with(launch({"mlflow_tracking_uri": store, "mlflow_store_access": access}, pg_site(site_config, env_major)),
               *words)
    assert postgres.digest(database_name(store)) == before, "the store changed although the launch was refused"


def test_a_server_that_never_answers_ends_the_job_in_time(launch, site_config, postgres):
    """A server that takes the connection and then says nothing (a hung database service)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        typed = postgres.uri("mlflow3_store", port=silent.getsockname()[1])
        fails_with(launch({"mlflow_tracking_uri": typed}, pg_site(site_config)), "cannot be reached from this node",
                   "timeout")


def everything_readable(top: Path) -> bytes:
    found = []
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            try:
                found.append(Path(dirpath, name).read_bytes())
            except OSError:
                pass
    return b"\n".join(found)


def test_password_in_the_uri_is_refused_on_the_form_page(site_config, postgres, users):
    secret = "Hunter2-" + os.urandom(6).hex()
    sessions = dataroot_for(OWNER) / "batch_connect"
    before = sorted(sessions.rglob("output/*")) if sessions.exists() else []
    with pytest.raises(RenderError) as error:
        stage({"mlflow_tracking_uri": f"postgresql://{OWNER}:{secret}@127.0.0.1:{postgres.PORT}/mlflow3_store"},
              user=OWNER, env=pg_site(site_config))
    message = str(error.value)
    assert "ERROR: the PostgreSQL tracking URI contains a password" in message and "~/.pgpass" in message
    assert secret not in message
    assert (sorted(sessions.rglob("output/*")) if sessions.exists() else []) == before, "a session was staged"
    for top in (Path(f"/home/{OWNER}"), Path("/tmp"), STORES_ROOT):
        assert secret.encode() not in everything_readable(top), f"the password was written below {top}"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert secret not in ps


def test_a_site_can_turn_postgres_stores_off(site_config, postgres, users):
    with pytest.raises(RenderError, match="ERROR: this site does not offer PostgreSQL tracking stores"):
        stage({"mlflow_tracking_uri": postgres.uri("mlflow3_store")}, user=OWNER,
              env=pg_site(site_config, postgresql={"allowed": False}))
