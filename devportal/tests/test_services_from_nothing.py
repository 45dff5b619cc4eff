"""Every set-up step of the test bed works from nothing, as on a brand-new machine, and a second run
changes nothing. Each test gives a script brand-new state (a new user, new folders through the
scripts' OOD_MLFLOW_* variables, a Slurm cluster of its own), checks what a newcomer relies on (the
service answers, the user logs in, a job runs), runs the script again and compares."""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from devportal.ood import APP_ROOT
from devportal.ports import free_port, free_port_pair

pytestmark = pytest.mark.launch

SERVICES = APP_ROOT / "devportal/services"


def run(argv: list, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs a set-up script as root the way bin/test does; fails the test with its output if it fails."""
    done = subprocess.run([str(a) for a in argv], env=dict(os.environ, **(env or {})), capture_output=True,
                          text=True, timeout=timeout, cwd="/", stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert "FAILED" not in done.stderr, done.stderr
    return done


def as_user(user: str, argv: list, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in (env or {}).items()],
                           *map(str, argv)], capture_output=True, text=True, timeout=timeout, cwd="/")


def snapshot(*paths: Path, skip: tuple = ()) -> dict:
    """What a second run must not change: every file's bytes, mode and owner, every folder's listing."""
    seen = {}
    for top in paths:
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            if any(part in skip for part in path.parts) or not os.path.lexists(path):
                continue
            info = path.lstat()
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() \
                else sorted(p.name for p in path.iterdir()) if path.is_dir() else os.readlink(path)
            seen[str(path)] = (info.st_mode, info.st_uid, info.st_gid, content)
    return seen


def fresh_folder(prefix: str) -> Path:
    """A new folder that the services' own users (postgres, munge, slurm, nobody) can reach."""
    folder = Path(tempfile.mkdtemp(prefix=f"ood-mlflow-fresh-{prefix}-", dir="/srv"))
    folder.chmod(0o755)
    return folder


@pytest.fixture
def new_user():
    """A user that has never existed on this machine, removed with its home afterwards."""
    name = f"ood-new-{secrets.token_hex(3)}"
    yield name
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def test_create_users_makes_a_new_user_that_can_log_in_and_a_second_run_changes_nothing(new_user):
    first = run([SERVICES / "create-users.sh", new_user])
    assert f"user {new_user}: created" in first.stdout
    entry = pwd.getpwnam(new_user)
    home = Path(entry.pw_dir)
    assert home.is_dir() and home.stat().st_uid == entry.pw_uid and home.stat().st_mode & 0o777 == 0o700
    # slurmd builds a job's environment through the user's login shell (su - USER).
    login = subprocess.run(["su", "-", new_user, "-c", "id -un; pwd"], capture_output=True, text=True, timeout=30)
    assert login.stdout.split() == [new_user, str(home)], login.stderr

    before = (pwd.getpwnam(new_user), snapshot(home))
    second = run([SERVICES / "create-users.sh", new_user])
    assert f"user {new_user}: exists" in second.stdout
    assert (pwd.getpwnam(new_user), snapshot(home)) == before


def pg_bin(name: str) -> str:
    return str(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))[-1])


def stop_cluster(top: Path) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", pg_bin("pg_ctl"), "-D", str(top / "data"), "-m", "immediate",
                    "-w", "stop"], capture_output=True, cwd="/", timeout=60)


@pytest.mark.parametrize("pgpass", ["missing", "empty", "other lines"])
def test_start_postgres_from_nothing_lets_the_researcher_log_in_and_a_second_run_changes_nothing(new_user, pgpass):
    run([SERVICES / "create-users.sh", new_user])
    home = Path(pwd.getpwnam(new_user).pw_dir)
    other_lines = "db.example.org:5432:*:someone:their-password\n*:*:projectdb:" + new_user + ":another\n"
    if pgpass != "missing":
        (home / ".pgpass").write_text("" if pgpass == "empty" else other_lines)
        (home / ".pgpass").chmod(0o600)
        shutil.chown(home / ".pgpass", new_user)
    top = fresh_folder("postgres")
    port = free_port()
    env = {"OOD_MLFLOW_PG_DIR": str(top), "OOD_MLFLOW_PG_PORT": str(port)}
    try:
        first = run([SERVICES / "start-postgres.sh", new_user], env)
        assert f"started on 127.0.0.1:{port}" in first.stdout
        # The researcher logs in as the user guide says: psql over TCP, the password from ~/.pgpass only.
        login = as_user(new_user, [pg_bin("psql"), "-X", "-w", "-At", "-h", "127.0.0.1", "-p", port, "-d", "postgres",
                                   "-c", "SELECT current_user"])
        assert login.stdout.strip() == new_user, login.stderr
        text = (home / ".pgpass").read_text()
        assert (home / ".pgpass").stat().st_mode & 0o777 == 0o600
        assert (home / ".pgpass").stat().st_uid == pwd.getpwnam(new_user).pw_uid
        if pgpass == "other lines":
            assert text.startswith(other_lines), "the researcher's other ~/.pgpass lines were lost"

        def state():
            verifier = subprocess.run(
                ["runuser", "-u", "postgres", "--", pg_bin("psql"), "-X", "-At", "-h", str(top / "socket"), "-p",
                 str(port), "-d", "postgres", "-c", f"SELECT rolpassword FROM pg_authid WHERE rolname = '{new_user}'"],
                capture_output=True, text=True, cwd="/", timeout=30).stdout
            files = [top / "data" / name for name in ("postgresql.auto.conf", "pg_hba.conf", "postmaster.pid")]
            return verifier, snapshot(home / ".pgpass", *files)

        before = state()
        second = run([SERVICES / "start-postgres.sh", new_user], env)
        assert f"running on 127.0.0.1:{port}" in second.stdout
        assert state() == before
    finally:
        stop_cluster(top)
        shutil.rmtree(top, ignore_errors=True)


def test_start_postgres_names_a_missing_user_in_one_line():
    top = fresh_folder("postgres")
    try:
        done = subprocess.run([str(SERVICES / "start-postgres.sh"), "ood-nobody-here"], capture_output=True, text=True,
                              env=dict(os.environ, OOD_MLFLOW_PG_DIR=str(top), OOD_MLFLOW_PG_PORT=str(free_port())),
                              timeout=120, cwd="/")
        assert done.returncode != 0
        assert done.stderr.strip().splitlines() == [
            "start-postgres: ERROR: no user ood-nobody-here with a home: "
            "run devportal/services/create-users.sh ood-nobody-here"]
    finally:
        stop_cluster(top)
        shutil.rmtree(top, ignore_errors=True)


def test_start_slurm_from_no_earlier_state_runs_a_users_job_and_a_second_run_changes_nothing(new_user):
    run([SERVICES / "create-users.sh", new_user])
    top = fresh_folder("slurm")
    port = free_port_pair()
    env = {"OOD_MLFLOW_SLURM_DIR": str(top), "OOD_MLFLOW_SLURM_PORT": str(port)}
    conf = top / "etc/slurm.conf"
    try:
        first = run([SERVICES / "start-slurm.sh"], env, timeout=120)
        assert "munge key created" in first.stdout and "slurmctld started" in first.stdout, first.stdout
        home = Path(pwd.getpwnam(new_user).pw_dir)
        job = as_user(new_user, ["sbatch", "--wait", "--time=1", "-o", home / "job.out", "--wrap",
                                 "echo ran as $(id -un) with $SLURM_CONF"],
                      env={"SLURM_CONF": conf}, timeout=120)
        assert job.returncode == 0, job.stdout + job.stderr
        assert (home / "job.out").read_text().split() == ["ran", "as", new_user, "with", str(conf)]

        def state():
            pids = [top / "run/slurmctld.pid", top / "run/slurmd.pid", top / "munge/run/munged.pid"]
            return snapshot(top / "etc", top / "munge/etc", *pids)

        before = state()
        second = run([SERVICES / "start-slurm.sh"], env, timeout=120)
        assert "(changed=0)" in second.stdout and "slurmctld already running" in second.stdout, second.stdout
        assert state() == before
    finally:
        subprocess.run([str(SERVICES / "stop-slurm.sh")], env=dict(os.environ, **env), capture_output=True,
                       timeout=120)
        left = subprocess.run(["pgrep", "-f", str(top)], capture_output=True, text=True).stdout
        shutil.rmtree(top, ignore_errors=True)
    assert not left, f"daemons of the fresh cluster still running: {left}"


def test_install_deps_into_new_venv_folders_and_a_second_run_changes_nothing():
    top = fresh_folder("venvs")
    env = {"OOD_MLFLOW_VENVS": str(top)}
    try:
        first = run([APP_ROOT / ".ci/install-deps.sh"], env, timeout=900)
        assert "install-deps: done" in first.stdout
        # The MLflow venvs serve Slurm jobs of ordinary users: they must work for someone who is not root.
        for venv, version in (("venv-mlflow3", "3.17.2"), ("venv-mlflow2", "2.22.")):
            shown = as_user("nobody", [top / venv / "bin/mlflow", "--version"])
            assert version in shown.stdout, shown.stdout + shown.stderr
        tests = subprocess.run([top / "venv-tests/bin/python", "-c", "import pytest, selenium, yaml"],
                               capture_output=True, text=True)
        assert tests.returncode == 0, tests.stderr

        before = snapshot(top, skip=("__pycache__",))
        second = run([APP_ROOT / ".ci/install-deps.sh"], env, timeout=300)
        assert "installing" not in second.stdout and "copying" not in second.stdout, second.stdout
        assert snapshot(top, skip=("__pycache__",)) == before
    finally:
        shutil.rmtree(top, ignore_errors=True)
