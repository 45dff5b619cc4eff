"""Launch a session as the portal would and talk to it as the browser and others would.

The staged files run in the emulation of OOD's basic job script (bash, clean
environment, as the session's owner) against real MLflow; requests carry the
Host and Origin the OOD proxy produces (devportal/client.py).
"""

from __future__ import annotations

import html
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devportal.client import SessionClient
from devportal.jobs import output_lines
from devportal.testbed import FORCE_CLI_SETUP


def wait_for_the_slurm_look_up(job, timeout: float = 60) -> None:
    """The look-up of RUNNING runs (slurm/sweep.py) runs beside the server with a helper process; once it has said
    what it found, the helper has ended and only the server's processes remain."""
    deadline = time.monotonic() + timeout
    while not output_lines(job.session, "Slurm runs: "):
        assert time.monotonic() < deadline, job.session.output()[-2000:]
        time.sleep(0.2)
    time.sleep(0.5)


def server_path(job) -> tuple:
    """(the path the Plan records, what the card says, the job's Python processes)."""
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    card = html.unescape(job.session.render_info())
    card_line = next(line for line in card.splitlines() if "mlflow-session-server" in line)
    pythons = [pid for pid, argv in job.process_commands().items()
               if argv and os.path.basename(argv[0]).startswith("python")]
    return plan["server"], card_line, pythons


@pytest.mark.parametrize("kind,major,proxy,dex", [
    ("sqlite", "3", "rnode", False),
    ("file", "3", "node", True),
    ("sqlite", "2", "rnode", False),
    ("file", "2", "node", False),
])
def test_session_serves_owner_and_refuses_everyone_else(launch, site_config, stores, kind, major, proxy, dex):
    job = launch({"mlflow_tracking_uri": stores(kind, major)}, site_config(major, proxy=proxy))
    info = job.wait_running(timeout=150)
    assert info["mlflow_proxy"] == proxy
    assert len(str(info["password"])) >= 32
    client = SessionClient(info, dex)

    status, _, _ = client.request("GET", "/")
    assert status == 401, "the UI answered without login"
    status, _ = client.api("POST", "runs/search", {"experiment_ids": ["1"]})
    assert status in (401, 403)
    status, _, body = client.request("GET", "/health", headers={"Origin": ""})
    assert (status, body) == (200, b"OK")

    headers = client.login()
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie, cookie
    assert headers["Location"] == client.prefix + "/"
    status, _, body = client.request("GET", "/")
    assert status == 200 and b"<html" in body.lower()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]

    status, _, _ = client.request("POST", "/ajax-api/2.0/mlflow/experiments/create", '{"name":"planted"}',
                                  {"Origin": "https://evil.example", "Content-Type": "application/json"})
    assert status == 403, "a cross-site POST was not refused"
    forged = SessionClient(info, dex)
    forged.cookie = client.cookie.split("=")[0] + "=forged"
    assert forged.request("GET", "/")[0] == 403

    wait_for_the_slurm_look_up(job)
    path, card, pythons = server_path(job)
    assert path == "one-import" and "one-import" in card, card
    assert len(output_lines(job.session, "Starting: the one-import server")) == 1
    assert len(pythons) == 1, "the one-import server runs in one process"

    session = job.session
    assert info["password"] not in session.output(), "the secret leaked into output.log"
    assert info["password"] not in (session.staged_root / "job_script_content.sh").read_text()
    assert session.connection_file.stat().st_mode & 0o777 == 0o600
    assert not output_lines(session, "ERROR:")
    # Any node user can send refused requests: they must not grow output.log by a line each.
    for _ in range(20):
        forged.request("GET", "/")
    logged = [line for line in session.output().splitlines() if ' HTTP/1.1" ' in line]
    assert not logged, f"the server logs every request in output.log: {logged[:3]}"


@pytest.mark.parametrize("major,processes", [("3", 2), ("2", 3)])
def test_the_environment_can_force_the_mlflow_server_cli(launch, site_config, stores, major, processes):
    """OOD_MLFLOW_SERVER=cli in an environment's setup: the fallback an unproven MLflow gets, named on the card."""
    env = site_config(major, FORCE_CLI_SETUP, proxy="node")
    job = launch({"mlflow_tracking_uri": stores("sqlite", major)}, env)
    info = job.wait_running(timeout=150)
    client = SessionClient(info)
    assert client.request("GET", "/")[0] == 401
    client.login()
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]

    path, card, pythons = server_path(job)
    assert path == "cli" and "the mlflow server CLI" in card and "OOD_MLFLOW_SERVER=cli" in card, card
    started = output_lines(job.session, "Starting: the mlflow server CLI (OOD_MLFLOW_SERVER=cli")
    assert len(started) == 1 and "--app-name ood-gate" in started[0]
    # The CLI stays resident beside its web server (uvicorn; gunicorn's master and worker on 2.x).
    assert len(pythons) == processes
    assert info["password"] not in job.session.output()
    assert not output_lines(job.session, "ERROR:")


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.parametrize("major", ["3", "2"])
def test_four_cores_fork_their_web_workers_after_the_one_import(launch, site_config, stores, major):
    """A 4-core session: two web workers, forked from the process that imported MLflow, not started anew."""
    job = launch({"mlflow_tracking_uri": stores("sqlite", major)},
                 site_config(major, "export SLURM_CPUS_PER_TASK=4\n", proxy="node"))
    client = SessionClient(job.wait_running(timeout=150))
    client.login()
    wait_for_the_slurm_look_up(job)
    path, card, pythons = server_path(job)
    assert path == "one-import" and "2 web workers" in card and "forked after the one import" in card, card
    plan = json.loads((job.session.staged_root / "plan.json").read_text())
    commands = job.process_commands()
    workers = [pid for pid in pythons if pid != plan["server_pid"]]
    assert len(pythons) == 3 and len(workers) == 2, [commands[p] for p in pythons]
    for pid in workers:  # forks: the parent's command line, the parent's child
        assert commands[pid] == commands[plan["server_pid"]]
        assert int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) == plan["server_pid"]
    assert len(output_lines(job.session, "Web workers: 2 forked after MLflow's one import")) == 1

    before = {pid: cpu_ticks(pid) for pid in workers}
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda _: client.run_names(), range(40)))
    assert all(found == ["run-00000", "run-00001", "run-00002"] for found in names)
    assert all(cpu_ticks(pid) > before[pid] for pid in workers), "one worker answered everything"
    # One import, shared: the three processes together hold far less than three copies of MLflow (each worker
    # of the CLI imports it again: about three times the server's RSS).
    total = sum(pss_kb(pid) for pid in pythons)
    assert total < 2 * rss_kb(plan["server_pid"]), (total, rss_kb(plan["server_pid"]))

    # A worker that dies is replaced; the session keeps answering.
    os.kill(workers[0], 9)
    deadline = time.monotonic() + 30
    while not output_lines(job.session, "Web worker 1 ") or len(server_path(job)[2]) < 3:
        assert time.monotonic() < deadline, job.session.output()[-2000:]
        time.sleep(0.2)
    assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
    assert not output_lines(job.session, "ERROR:")

    os.killpg(job.proc.pid, signal.SIGTERM)  # as Slurm ends the job: the workers end with their parent
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not job.finished():
        time.sleep(0.2)
    time.sleep(1)
    assert job.finished() and not job.process_commands(), job.process_commands()


def hold_connections(host: str, port: int, count: int) -> list:
    """`count` connections as another process on the node could hold them: silent, or half-sent requests."""
    import socket

    held = []
    for number in range(count):
        sock = socket.create_connection((host, port), timeout=10)
        if number % 3 == 1:
            sock.sendall(b"GET /ajax-api/2.0/mlflow/experiments/search HTTP/1.1\r\nHost: x\r\n")  # no end of headers
        elif number % 3 == 2:
            sock.sendall(b"POST /ajax-api/2.0/mlflow/runs/search HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{")  # most of the body missing
        held.append(sock)
    return held


@pytest.mark.parametrize("major", ["3", "2"])
def test_connections_another_process_holds_open_do_not_slow_the_owner(launch, site_config, stores, major):
    job = launch({"mlflow_tracking_uri": stores("sqlite", major)}, site_config(major, proxy="node"))
    info = job.wait_running(timeout=150)
    client = SessionClient(info)
    client.login()
    start = time.monotonic()
    client.run_names()
    alone = time.monotonic() - start
    held = hold_connections(info["host"], int(info["port"]), 80)
    try:
        start = time.monotonic()
        for _ in range(5):
            assert client.run_names() == ["run-00000", "run-00001", "run-00002"]
        assert (time.monotonic() - start) / 5 < alone + 2, "held connections slowed the owner's searches"
    finally:
        for sock in held:
            sock.close()
