"""Runs that MLflow shows RUNNING but whose Slurm job has ended (pure: no MLflow, no Slurm, no files).

A training job that Slurm ends (time limit, scancel, node failure, OOM) is
killed before `mlflow.end_run()`, so its run stays RUNNING for ever. A run is
linked to a job by its tag `slurm.job_id` (`12345`, or `12345_7` for an array
task), else by a run name that is a job id (`12345`, `12345_7`, or the user
guide's earlier `job-12345`). squeue knows jobs for MinJobAge seconds after
they end; sacct, where the site has accounting, knows them for good; without
accounting, a job Slurm no longer knows has ended.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

JOB_TAG = "slurm.job_id"  # what the user guide's training scripts set
STATE_TAG = "slurm.state"  # what closing a run records
EXIT_TAG = "slurm.exit_code"
_JOB_ID = re.compile(r"\d+(?:_\d+)?")
_RUN_NAME = re.compile(r"(?:job-)?(\d+(?:_\d+)?)")

# Slurm's end states (squeue %T, sacct State); any other state (PENDING, RUNNING, COMPLETING, REQUEUED,
# SUSPENDED, ...) is a live job, and so is a state this list does not know: a run is never closed on a guess.
ENDED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                          "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
FAILED_STATES = frozenset({"FAILED", "NODE_FAIL", "OUT_OF_MEMORY"})  # MLflow's FAILED; every other end: KILLED
GONE = "UNKNOWN"  # ended, but Slurm (without accounting) no longer says how
SHOWN_RUNS = 10  # the card names this many; output.log names them all

# The columns asked for, `|`-separated: squeue's %i is 12345_7 for an array task, %A that task's own job id.
SQUEUE_FORMAT = "%i|%A|%T|%e"
SACCT_FIELDS = "JobID,JobIDRaw,State,End,ExitCode"
NO_ACCOUNTING = "accounting storage is disabled"  # sacct's words where the site has no slurmdbd


@dataclass(frozen=True)
class Run:
    run_id: str
    name: str
    job_id: str  # the job it is linked to


@dataclass(frozen=True)
class JobEnd:
    state: str  # Slurm's state, one word
    end_ms: int = 0  # when it ended, epoch milliseconds; 0: not known
    exit_code: str = ""


@dataclass(frozen=True)
class Ended:
    run: Run
    job: JobEnd

    @property
    def status(self) -> str:
        """The MLflow status closing the run sets."""
        return "FAILED" if self.job.state in FAILED_STATES else "KILLED"


def job_id_of(name: str, tags: dict) -> str:
    """The Slurm job a run is linked to, or ""."""
    tagged = str(tags.get(JOB_TAG) or "").strip()
    if _JOB_ID.fullmatch(tagged):
        return tagged
    found = _RUN_NAME.fullmatch(str(name or "").strip())
    return found.group(1) if found else ""


def valid_job_ids(values) -> list:
    """Job ids fit for a Slurm command line, each once; raises ValueError for anything else (never an option)."""
    if not isinstance(values, list) or not all(isinstance(v, str) and _JOB_ID.fullmatch(v) for v in values):
        raise ValueError("job ids are 12345 or 12345_7")
    return list(dict.fromkeys(values))


def squeue_argv(job_ids) -> list:
    return ["squeue", "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}", "--jobs=" + ",".join(job_ids)]


def sacct_argv(job_ids) -> list:
    return ["sacct", "--parsable2", "--noheader", "--allocations", f"--format={SACCT_FIELDS}",
            "--jobs=" + ",".join(job_ids)]


def squeue_unknown_only(returncode: int, stderr: str) -> bool:
    """squeue asked about a single job it no longer knows fails with this; it is an answer, not an outage."""
    return returncode != 0 and "Invalid job id specified" in stderr


def parse_squeue(text: str) -> dict:
    """{job id: JobEnd} from squeue's SQUEUE_FORMAT lines, under both of a task's ids (12345_7 and its own)."""
    return _parse(text, exit_codes=False)


def parse_sacct(text: str) -> dict:
    """{job id: JobEnd} from `sacct --parsable2 --noheader` lines of SACCT_FIELDS, likewise."""
    return _parse(text, exit_codes=True)


def _parse(text: str, exit_codes: bool) -> dict:
    """Lines of `shown id|own id|state|end` (and `|exit code` from sacct); the first line of an id counts."""
    found = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != (5 if exit_codes else 4):
            continue
        shown, own, state, end = parts[:4]
        job = JobEnd(state.split()[0] if state.strip() else "", _epoch_ms(end), parts[4].strip() if exit_codes else "")
        for job_id in _expand(shown) + [own.strip()]:
            found.setdefault(job_id, job)
    return found


def _expand(shown: str) -> list:
    """A job id as Slurm shows it: 12345, 12345_7, or a pending array's 12345_[1-3,8%2] (each task)."""
    shown = shown.strip()
    found = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", shown)
    if not found:
        return [shown] if shown else []
    ids = []
    for piece in found.group(2).split(","):
        low, _, high = piece.partition("-")
        if low.isdigit() and (high or low).isdigit() and int(high or low) - int(low) < 100000:
            ids += [f"{found.group(1)}_{task}" for task in range(int(low), int(high or low) + 1)]
    return ids


def _epoch_ms(text: str) -> int:
    """Slurm's local time (2026-12-02T05:44:06) in epoch milliseconds; 0 for Unknown, None or N/A."""
    try:
        return int(time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S")) * 1000)
    except ValueError:
        return 0


def ended_runs(runs, squeue: dict, sacct: dict | None) -> list:
    """The runs whose job has ended: squeue first (it knows live jobs), then sacct where there is accounting
    (sacct is None without it: a job neither knows has ended, how is not known)."""
    out = []
    for run in runs:
        job = squeue.get(run.job_id) or (sacct or {}).get(run.job_id)
        if job is None and sacct is None:
            job = JobEnd(GONE)
        if job is not None and (job.state in ENDED_STATES or job.state == GONE):
            out.append(Ended(run, job))
    return out


def _named(ended: list, limit: int) -> str:
    shown = [f"{e.run.name or e.run.run_id} (job {e.run.job_id})" for e in ended[:limit]]
    more = len(ended) - len(shown)
    return ", ".join(shown) + (f" and {more} more (output.log lists them all)" if more > 0 else "")


def summary(ended: list, limit: int = SHOWN_RUNS) -> str:
    """What the card says: how many, by Slurm state, and which."""
    counts = Counter(e.job.state for e in ended)
    states = ", ".join(f"{n} {'ended earlier (Slurm no longer says how)' if state == GONE else state}"
                       for state, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    verb = "run is" if len(ended) == 1 else "runs are"
    jobs = "its Slurm job has" if len(ended) == 1 else "their Slurm jobs have"
    return f"{len(ended)} {verb} RUNNING in MLflow, but {jobs} ended: {states}. {_named(ended, limit)}."


def action(closed: bool) -> str:
    """What this session did about them, or what the user can do."""
    if closed:
        return ("This session closed them: KILLED in MLflow (FAILED for a FAILED, NODE_FAIL or OUT_OF_MEMORY job), "
                f"ended when their job ended, with the tag {STATE_TAG}.")
    return ("To mark them KILLED in MLflow, launch again with Store access Read and write and tick \"Close runs "
            "whose Slurm job has ended\".")
