"""Another user takes the session's port before MLflow binds it.

On the `mlflow server` CLI path the port is on the command line, which every
user on the node can read in /proc, for the seconds MLflow takes to import
before it binds (the one-import server puts it on no command line, so this test
forces the CLI). The squatter below (run as OTHER) waits for that command line,
binds the port first and keeps every byte it is sent. The session must end with
one ERROR line and never send the squatter its secret (the readiness check
POSTs it to /login).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from devportal.jobs import output_lines
from devportal.ood import as_user
from devportal.testbed import FORCE_CLI_SETUP, OTHER, OWNER, make_store

# argv: a string unique to the victim's MLflow command line, a directory to write to.
SQUATTER = r"""
import os, socket, sys, time
marker, out = sys.argv[1], sys.argv[2]

def victim_port():
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "server" in argv and "--port" in argv and any(marker in a for a in argv):
            return int(argv[argv.index("--port") + 1])

open(f"{out}/watching", "w").close()
deadline = time.monotonic() + 150
while (port := victim_port()) is None:
    if time.monotonic() > deadline:
        sys.exit("no victim seen")
    time.sleep(0.01)
server = socket.socket()
try:
    server.bind(("0.0.0.0", port))
except OSError as lost:
    sys.exit(f"lost the race for port {port}: {lost}")
server.listen()
with open(f"{out}/bound", "w") as fh:
    fh.write(str(port))
server.settimeout(1)
while time.monotonic() < deadline:
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    conn.settimeout(3)  # answers nothing; keeps what the client sends
    with conn, open(f"{out}/received", "ab") as log:
        try:
            while data := conn.recv(65536):
                log.write(data)
                log.flush()
        except OSError:
            pass
"""


def test_a_squatted_port_ends_the_job_without_sending_the_secret(launch, site_config, users):
    # A store of its own: its path tells the squatter which MLflow is this test's.
    store = make_store("sqlite", "3", OWNER, name="-squatted")
    out = Path(tempfile.mkdtemp(prefix="ood-mlflow-squatter-"))
    bob = pwd.getpwnam(OTHER)
    os.chown(out, bob.pw_uid, bob.pw_gid)
    squatter = subprocess.Popen(as_user(OTHER, ["/usr/bin/python3", "-c", SQUATTER, str(Path(store).parent), str(out)]),
                                cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (out / "watching").exists():
            assert squatter.poll() is None and time.monotonic() < deadline, "the squatter did not start"
            time.sleep(0.05)

        job = launch({"mlflow_tracking_uri": store}, site_config("3", FORCE_CLI_SETUP))
        session = job.session
        secret_file = session.staged_root / ".gate-secret"
        # Read while the job runs (its clean step removes it at the end), once before.sh has written all of it.
        while not (secret_file.exists() and secret_file.stat().st_size >= 32):
            assert not job.finished(), f"the job ended before its secret could be read:\n{session.output()}"
            time.sleep(0.02)
        secret = secret_file.read_text()
        elapsed = job.wait_finished(timeout=60)
        assert (out / "bound").exists(), f"the squatter never held the port (it lost the race?):\n{session.output()}"
        port = int((out / "bound").read_text())

        assert len(secret) >= 32
        assert not secret_file.exists(), "the ended session's folder still holds its secret"
        received = (out / "received").read_bytes() if (out / "received").exists() else b""
        assert secret.encode() not in received, "the session sent its secret to the squatter"
        errors = output_lines(session, "ERROR:")
        assert len(errors) == 1, session.output()
        assert "Another process (of user ood-bob) holds port" in errors[0] and str(port) in errors[0], errors
        assert not session.connection_file.exists(), "connection.yml was written for a squatted port"
        assert elapsed < 60
    finally:
        try:
            os.killpg(squatter.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        squatter.wait(10)
        subprocess.run(["rm", "-rf", str(out)], check=False)
