"""Run a staged session's job: straight with bash, or through real Slurm.

Both runners write the job script OOD would submit (job_script_content.sh),
give the job a clean environment, send its output to output.log, and clean up
after themselves: on these test machines a job's processes can outlive
`scancel`, so everything whose working directory is the session's staged_root
is killed at the end.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time

from .jobscript import basic_job_script
from .ood import Session, as_user

JOB_NAME = "ondemand/sys/dashboard/sys/mlflow"


class JobFailed(AssertionError):
    pass


class Job:
    def __init__(self, session: Session):
        self.session = session
        self.script = basic_job_script(session.staged_root, session.submit.get("batch_connect", {}))
        self.started = None

    # What the dashboard shows: "Running" once connection.yml exists.
    def wait_running(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.session.connection_file.exists():
                return self.session.connection()
            if self.finished():
                raise JobFailed(f"the job ended before connection.yml was written:\n{self.session.output()}")
            time.sleep(0.25)
        raise JobFailed(f"no connection.yml within {timeout} s:\n{self.session.output()}")

    def wait_finished(self, timeout: float = 90) -> float:
        """Seconds from the job's start until it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished():
                return time.monotonic() - self.started
            time.sleep(0.25)
        raise JobFailed(f"the job still runs after {timeout} s:\n{self.session.output()}")

    def leftover_pids(self) -> list:
        """Processes working in this session's directory or below (the job shell, MLflow, its workers)."""
        root = str(self.session.staged_root)
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cwd = os.readlink(f"/proc/{entry}/cwd")
                    if cwd == root or cwd.startswith(root + "/"):
                        pids.append(int(entry))
                except OSError:
                    pass
        return pids

    def process_commands(self) -> dict:
        """{pid: argv} of the job's processes, as every user of the node sees them in ps."""
        found = {}
        for pid in self.leftover_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    text = fh.read().decode(errors="replace").rstrip("\0")
            except OSError:
                continue
            found[pid] = text.split("\0") if text else []
        return found

    def kill_leftovers(self) -> None:
        for _ in range(20):
            pids = self.leftover_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)


class LocalJob(Job):
    """The job script run directly with bash, as the session's user, in a login-like clean environment.

    `cpus`: the CPUs the job may run on, as Slurm's cgroups give a job the cores it asked for (the benchmark's
    load runs set it; the test bed's Slurm has task/none)."""

    cpus: frozenset = frozenset()

    def start(self) -> "LocalJob":
        script_file = self.session.staged_root / "job_script_content.sh"
        script_file.write_text(self.script)
        user = self.session.user
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())
        env = {
            "HOME": entry.pw_dir,
            "USER": entry.pw_name,
            "LOGNAME": entry.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        log = open(self.session.output_log, "wb")
        if user:
            os.chown(self.session.output_log, entry.pw_uid, entry.pw_gid)
            os.chown(script_file, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen(
            as_user(user, ["/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in env.items()]
                    + ["/bin/bash", str(script_file)]),
            cwd=self.session.staged_root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
        )
        log.close()
        self.started = time.monotonic()
        return self

    def finished(self) -> bool:
        return self.proc.poll() is not None

    def cancel(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill_leftovers()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class SlurmJob(Job):
    """Submitted with sbatch the way OOD's Slurm adapter does (ood-batch-connect.md §2.4)."""

    def sbatch_argv(self) -> list:
        script = self.session.submit.get("script", {})
        ctx = self.session.context
        argv = ["sbatch", "-D", str(self.session.staged_root), "-J", JOB_NAME,
                "-o", str(self.session.output_log)]
        hours = ctx.get("bc_num_hours", "")
        wall = (int(hours) if hours.strip().isdigit() else 1) * 3600
        argv += ["-t", "%02d:%02d:%02d" % (wall // 3600, wall % 3600 // 60, wall % 60)]
        if ctx.get("bc_queue", "").strip():
            argv += ["-p", ctx["bc_queue"].strip()]
        account = (ctx.get("bc_account") or ctx.get("auto_accounts") or "").strip()
        if account:  # bc_account and auto_accounts both submit accounting_id
            argv += ["-A", account]
        argv += ["--export", "NONE"]
        argv += [str(a) for a in script.get("native", [])]
        return argv + ["--parsable"]

    def start(self) -> "SlurmJob":
        (self.session.staged_root / "job_script_content.sh").write_text(self.script[len("#!/bin/bash\n"):])
        proc = subprocess.run(as_user(self.session.user, self.sbatch_argv()), input=self.script,
                              capture_output=True, text=True, timeout=60, cwd="/")
        if proc.returncode != 0:
            raise JobFailed(f"sbatch failed: {proc.stderr.strip()}")
        self.job_id = proc.stdout.strip().split(";")[0]
        self.started = time.monotonic()
        return self

    def state(self) -> str:
        proc = subprocess.run(["squeue", "-h", "-j", self.job_id, "-o", "%T"], capture_output=True, text=True,
                              timeout=30)
        return proc.stdout.strip()

    def finished(self) -> bool:
        return self.state() in ("", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")

    def cancel(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True, timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not self.finished():
            time.sleep(0.25)
        self.kill_leftovers()


def output_lines(session: Session, prefix: str) -> list:
    return [line for line in session.output().splitlines() if line.startswith(prefix)]

