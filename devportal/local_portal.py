"""Launch the app on this machine exactly as a portal would: `bin/launch-local`.

Stages a session with the emulated dashboard, submits it through the local
Slurm (or runs the job script directly where there is none), serves the session
card from an OOD-like Apache on http://localhost:PORT and waits until Ctrl+C,
then cancels the job. Without a store it makes a demo store first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devportal.apache import OodApache
from devportal.dashboard import make_docroot, publish_card
from devportal.jobs import JobFailed, LocalJob, SlurmJob
from devportal.ood import APP_ROOT, stage
from devportal.testbed import OWNER, make_store, write_site_config


def slurm_available() -> bool:
    if not shutil.which("sbatch"):
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


def session_user() -> str:
    """The person who ran `sudo bin/launch-local`, else the test user: never root."""
    user = os.environ.get("SUDO_USER", "")
    if user and user != "root":
        return user
    return OWNER


# What the form's words are in this launcher, for the fixes that ERROR lines suggest.
FORM_TO_OPTIONS = (("MLflow version", "--mlflow 3|2"), ("Store access", "--access"))


def launch_failure(output: str) -> str:
    """The job's ERROR line, with the launcher's option for each form field its fix names."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    if not errors:
        return "The job ended before MLflow answered; its output:\n" + output[-2000:]
    hints = [f"'{field}' on the form is {option} here" for field, option in FORM_TO_OPTIONS if field in errors[-1]]
    return errors[-1] + (f"\n(In bin/launch-local: {'; '.join(hints)}.)" if hints else "")


def postgres_demo(major: str, user: str) -> tuple:
    """A demo store in the test bed's own PostgreSQL server (the user's password in their ~/.pgpass),
    and the site setting that lets the session show its artifacts (a database has no folder)."""
    from devportal import postgres
    subprocess.run([str(APP_ROOT / "devportal/services/start-postgres.sh"), user], check=True)
    name = f"demo_mlflow{major}"
    store = postgres.make_store(name, major, user)
    return store, {"artifact_roots": [str(postgres.artifacts_of(name))]}


def access_choices() -> list:
    """The form's Store access values, from the job's own table (template/ood_mlflow/stores/access.py), so the
    launcher offers what the form offers (tests/test_access_modes.py checks the form and bin/launch-local)."""
    template = str(APP_ROOT / "template")
    if template not in sys.path:
        sys.path.append(template)  # here, not in PYTHONPATH: the job must not inherit it
    from ood_mlflow.stores.access import ACCESS_CHOICES
    return list(ACCESS_CHOICES)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/launch-local", description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", help="directory, SQLite or postgresql:// store to open "
                        "(default: a new demo store)")
    parser.add_argument("--demo", choices=["sqlite", "directory", "postgresql"], default="sqlite",
                        help="the kind of demo store made when no STORE is given")
    parser.add_argument("--mlflow", choices=["3", "2"], default="3", help="MLflow major version (test venvs)")
    parser.add_argument("--proxy", choices=["rnode", "node"], default="rnode", help="OOD's reverse-proxy prefix")
    choices = access_choices()
    parser.add_argument("--access", choices=choices, default=choices[0], help="the form's Store access")
    parser.add_argument("--port", type=int, default=8080, help="the portal's port on localhost")
    parser.add_argument("--no-slurm", action="store_true", help="run the job script directly")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)

    user = session_user()
    site = {}
    if args.store:
        store = args.store
    elif args.demo == "postgresql":
        store, site = postgres_demo(args.mlflow, user)
    else:
        store = make_store("file" if args.demo == "directory" else "sqlite", args.mlflow, user, name="-demo")
    work = Path(tempfile.mkdtemp(prefix="ood-mlflow-local-"))
    work.chmod(0o755)
    env = write_site_config(work / "site.yml", args.mlflow, proxy=args.proxy, **site)
    use_slurm = not args.no_slurm and slurm_available()
    session = stage({"mlflow_tracking_uri": store, "mlflow_store_access": args.access}, user=user, env=env)
    job = (SlurmJob if use_slurm else LocalJob)(session).start()
    apache = OodApache(work / "apache", args.port, portal_host="localhost", docroot=make_docroot(),
                       remote_user=user)
    try:
        how = "Slurm job " + job.job_id if use_slurm else "job script run directly"
        print(f"Session {session.id} for {user}: {how}")
        print(f"Store: {store}\nWaiting for MLflow to start (output: {session.output_log}) ...", flush=True)
        try:
            job.wait_running(timeout=300)
        except JobFailed:
            print(launch_failure(session.output()), file=sys.stderr)
            return 1
        apache.start()
        path = publish_card(session, apache.docroot, getattr(job, "job_id", ""))
        print(f"\nOpen {apache.url(path)} and press 'Connect to MLflow'.")
        print("Stop with Ctrl+C (the job is cancelled and the portal stopped).", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while not job.finished():
            time.sleep(2)
        print("The job has ended:\n" + session.output()[-2000:])
        return 1
    except KeyboardInterrupt:
        print(f"\nStopped: cancelled session {session.id}"
              f"{' (Slurm job ' + job.job_id + ')' if use_slurm else ''} and the portal.", flush=True)
        return 0
    finally:
        job.cancel()
        apache.stop()


if __name__ == "__main__":
    sys.exit(main())
