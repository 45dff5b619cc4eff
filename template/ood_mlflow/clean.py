"""The job's last step (clean.sh, which OOD's clean_up sources however the job ends): leave nothing behind.

A session ends by the time limit, by Cancel (scancel), by a failed start or by
a crash of the server; Slurm's SIGTERM reaches the job shell, whose trap (set
in before.sh) runs clean_up, as do the ends the job script sees itself. Here:

- the server (the interpreter serve runs in, however many wrapper processes a
  container module puts above it) gets SIGTERM, then SIGKILL, with its
  children, so nothing outlives the job even where Slurm loses track of
  processes whose parent died;
- what the session made outside its folder goes: the server's private temp
  folder, a read-only copy of the store, the temporary registry (Plan.scratch);
- the session folder keeps no secret (OOD 4.1's "Download as zip" hands it
  out): the gate's secret file and connection.yml, which holds it, are removed;
- at the time limit, job_exit_reason says so, for OOD 4.x dashboards. Slurm
  is asked why the job ends (its reason is TimeLimit then): the hours on the
  form are not the job's limit once an administrator changed it, and the Plan's
  end is counted from after a conversion. Where Slurm cannot be asked, the
  Plan's end stands in.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from .plan import read_plan
from .server.processes import descendants, process_alive
from .session import CONNECTION_FILE, EXIT_REASON_FILE, SECRET_FILE, SESSION_DIR

GRACE_SECONDS = 5
TIME_LIMIT_REASON = "The session reached its time limit. Launch a new one with more hours if you need longer."


def stop(pid: int) -> None:
    """SIGTERM to the server and what it started, SIGKILL to whatever still runs after the grace time."""
    if pid <= 1 or not process_alive(pid):
        return
    group = [pid] + descendants(pid)
    for target in group:
        _signal(target, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(process_alive(p) for p in group):
        time.sleep(0.1)
    for target in group + descendants(pid):
        if process_alive(target):
            _signal(target, signal.SIGKILL)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def ask_slurm_why():
    """`squeue`'s reason for this job, started now and read by at_time_limit (it runs while the server stops:
    Slurm's SIGKILL follows its SIGTERM after KillWait seconds)."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if not job.isdigit():
        return None
    try:
        return subprocess.Popen(["squeue", "-h", "-j", job, "-o", "%r"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def at_time_limit(question, ends_at: int) -> bool:
    if question is not None:
        try:
            answer = question.communicate(timeout=3)[0].strip()
            if question.returncode == 0 and answer:
                return answer == "TimeLimit"
        except subprocess.TimeoutExpired:
            question.kill()
    return bool(ends_at) and time.time() >= ends_at - 120


def remove(path: str) -> None:
    if path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)


def main(session_dir=SESSION_DIR) -> int:
    try:
        plan = read_plan(session_dir)
    except (OSError, ValueError):
        plan = None  # preflight refused the launch or was stopped: what it made, it removed itself
    question = ask_slurm_why()
    if plan:
        stop(plan.server_pid)
        for path in plan.scratch:
            remove(path)
    if at_time_limit(question, plan.ends_at if plan else 0) and not os.path.exists(session_dir / EXIT_REASON_FILE):
        with open(session_dir / EXIT_REASON_FILE, "w", encoding="utf-8") as fh:
            fh.write(TIME_LIMIT_REASON + "\n")
    for name in (SECRET_FILE, CONNECTION_FILE):
        try:
            os.unlink(session_dir / name)
        except FileNotFoundError:
            pass
    return 0
