"""The server's look-up of RUNNING runs whose Slurm job has ended, and, if the user asked, their closing.

It runs in a thread of the one-import server, after MLflow's one import and
once the server listens, so it costs the session no second MLflow import and
does not hold up the card turning Running. It reads the store the server
serves (a read-only session's copy or read-only connection included) through
MLflow's public client, asks Slurm through the helper process serve.py started
before confining itself (lookup.py), closes runs with
MlflowClient.set_terminated when the Plan says so (Read and write sessions
whose user ticked the form's option), and leaves what it found in
server/slurm_runs.json, the one folder of the session the confined server may
write, for the card (info.html.erb).
"""

from __future__ import annotations

import json
import socket
import time

from ..errors import warn
from ..plan import Plan
from ..session import SERVER_DIR, SESSION_DIR, SLURM_RUNS_FILE, write_json
from . import runs as slurm_runs

OFF, REPORT, CLOSE = "off", "report", "close"  # Plan.slurm_runs
PAGE = 10000  # runs per search_runs call (the SQL stores accept up to 50000)
EXPERIMENTS_PER_SEARCH = 500  # experiment ids per search_runs call: SQLite's IN list stays small


def running_linked_runs(client) -> tuple:
    """(the RUNNING runs of active experiments that name a Slurm job, how many RUNNING runs there are)."""
    from mlflow.entities import ViewType

    experiment_ids, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        experiment_ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    linked, running = [], 0
    for start in range(0, len(experiment_ids), EXPERIMENTS_PER_SEARCH):
        token = None
        while True:
            page = client.search_runs(experiment_ids[start:start + EXPERIMENTS_PER_SEARCH],
                                      filter_string="attributes.status = 'RUNNING'",
                                      run_view_type=ViewType.ACTIVE_ONLY, max_results=PAGE, page_token=token)
            for run in page:
                running += 1
                job_id = slurm_runs.job_id_of(run.info.run_name, run.data.tags)
                if job_id:
                    linked.append(slurm_runs.Run(run.info.run_id, run.info.run_name or "", job_id))
            token = page.token
            if not token:
                break
    return linked, running


def ask_helper(helper, job_ids: list) -> tuple:
    """The helper's (squeue, sacct) answer for these job ids (lookup.decode)."""
    from .lookup import SlurmUnreachable, decode

    try:
        helper.stdin.write(json.dumps(job_ids) + "\n")
        helper.stdin.close()
        line = helper.stdout.readline()
        helper.wait(10)
    except (OSError, ValueError) as error:
        raise SlurmUnreachable(f"the look-up helper failed ({error})") from None
    if not line:
        raise SlurmUnreachable(f"the look-up helper ended without an answer (exit {helper.poll()})")
    return decode(json.loads(line))


def close(client, ended: list) -> list:
    """Mark each run KILLED or FAILED, ended when its job ended (else now), with Slurm's state as a tag;
    returns the runs it could not close, with why."""
    failed = []
    for item in ended:
        try:
            client.set_tag(item.run.run_id, slurm_runs.STATE_TAG, item.job.state)
            if item.job.exit_code:
                client.set_tag(item.run.run_id, slurm_runs.EXIT_TAG, item.job.exit_code)
            client.set_terminated(item.run.run_id, item.status, end_time=item.job.end_ms or None)
        except Exception as error:  # noqa: BLE001 - MLflow's store errors have no common base; each is reported
            failed.append((item, f"{type(error).__name__}: {str(error)[:200]}"))
    return failed


def sweep(plan: Plan, helper, client) -> dict:
    """Find, ask, maybe close; returns what the card shows."""
    began = time.monotonic()
    runs, running = running_linked_runs(client)
    found = {"running": running, "linked": len(runs), "ended": [], "summary": "", "action": "", "warning": ""}
    if not runs:
        helper.stdin.close()
        print(f"Slurm runs: {running} RUNNING runs, none linked to a Slurm job "
              f"({time.monotonic() - began:.2f} s)", flush=True)
        return found
    from .lookup import SlurmUnreachable

    try:
        squeue, sacct = ask_helper(helper, sorted({run.job_id for run in runs}))
    except SlurmUnreachable as error:
        found["warning"] = warn(
            f"Could not ask Slurm about the jobs of {len(runs)} RUNNING runs ({error}), so the card cannot say "
            f"which of them have ended; the session works as usual. Fix: relaunch later; if it persists, ask your "
            f"site's support whether squeue works in jobs")
        return found
    ended = slurm_runs.ended_runs(runs, squeue, sacct)
    found["ended"] = [{"run_id": e.run.run_id, "name": e.run.name, "job_id": e.run.job_id, "state": e.job.state,
                       "end_ms": e.job.end_ms, "status": e.status} for e in ended]
    if not ended:
        print(f"Slurm runs: the jobs of all {len(runs)} RUNNING runs linked to Slurm jobs are live "
              f"({time.monotonic() - began:.2f} s)", flush=True)
        return found
    found["summary"] = slurm_runs.summary(ended)
    print("Slurm runs: " + slurm_runs.summary(ended, limit=len(ended)), flush=True)
    closing = plan.slurm_runs == CLOSE
    if closing:
        failed = close(client, ended)
        if failed:
            item, why = failed[0]
            found["warning"] = warn(
                f"Could not close {len(failed)} of {len(ended)} runs whose Slurm job has ended, e.g. "
                f"{item.run.run_id} ({why}); they stay RUNNING. Fix: check that you can write to the store, "
                f"then launch again with the option ticked")
            closing = len(failed) < len(ended)
    found["action"] = slurm_runs.action(closing)
    print("Slurm runs: " + found["action"], flush=True)
    print(f"Slurm runs: looked up {len(runs)} runs in {time.monotonic() - began:.2f} s", flush=True)
    return found


def write_found(found: dict, session_dir=SESSION_DIR) -> None:
    write_json(session_dir / SERVER_DIR / SLURM_RUNS_FILE, found)


def wait_listening(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def run(plan: Plan, helper) -> None:
    """The look-up, start to end (the server runs it in the background)."""
    try:
        if not wait_listening(plan.port, plan.settings.start_timeout):
            return
        from mlflow.tracking import MlflowClient

        write_found(sweep(plan, helper, MlflowClient(tracking_uri=plan.backend_uri)))
    except Exception as error:  # noqa: BLE001 - the session works without this; one line says why
        write_found({"warning": warn(f"The look-up of RUNNING runs whose Slurm job has ended failed "
                                       f"({type(error).__name__}: {str(error)[:200]}); the session works as usual. "
                                       f"Fix: report it to your site's support with this output.log")})


class Sweep:
    """The look-up as the server's background job: run() where it runs; release() in a process that forked it
    off and keeps none of it (its copies of the helper's pipes would keep the helper waiting for ever)."""

    def __init__(self, plan: Plan, helper):
        self.plan, self.helper = plan, helper

    def __call__(self) -> None:
        run(self.plan, self.helper)

    def release(self) -> None:
        for pipe in (self.helper.stdin, self.helper.stdout):
            pipe.close()
