"""Ask Slurm what became of jobs: one squeue call, then one sacct call for the jobs squeue no longer knows.

It runs in a small helper process (`python3 -m ood_mlflow slurm-lookup`) that
serve.py starts before it confines itself: Slurm's commands, libraries,
configuration and munge live where each site put them (/usr, /opt/slurm,
a configless cache), none of which the confined server may read. The helper
imports no MLflow and runs nothing but squeue and sacct, with job ids it has
checked, no shell. The server's look-up thread writes one JSON line of job ids
to its stdin and reads one JSON line back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

from .runs import (
    NO_ACCOUNTING,
    JobEnd,
    parse_sacct,
    parse_squeue,
    sacct_argv,
    squeue_argv,
    squeue_unknown_only,
    valid_job_ids,
)

TIMEOUT = 30  # seconds for each command: a busy slurmctld can be slow, and nothing waits on this


class SlurmUnreachable(Exception):
    pass


def _run(argv: list) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SlurmUnreachable(f"{argv[0]} is not on the job's PATH") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"{argv[0]} did not answer within {TIMEOUT} s") from None


def _failure(argv: list, proc: subprocess.CompletedProcess) -> str:
    said = (proc.stderr or proc.stdout).strip().splitlines()
    return f"{argv[0]} failed (exit {proc.returncode}{': ' + said[-1][:200] if said else ''})"


def look_up(job_ids: list) -> tuple:
    """({job id: JobEnd} from squeue, {job id: JobEnd} from sacct or None without accounting)."""
    argv = squeue_argv(job_ids)
    proc = _run(argv)
    if proc.returncode != 0 and not squeue_unknown_only(proc.returncode, proc.stderr):
        raise SlurmUnreachable(_failure(argv, proc))
    known = parse_squeue(proc.stdout if proc.returncode == 0 else "")
    rest = [job_id for job_id in job_ids if job_id not in known]
    if not rest:
        return known, {}
    argv = sacct_argv(rest)
    proc = _run(argv)
    if proc.returncode != 0 and NO_ACCOUNTING in (proc.stderr + proc.stdout).lower():
        return known, None
    if proc.returncode != 0:
        raise SlurmUnreachable(_failure(argv, proc))
    return known, parse_sacct(proc.stdout)


def main() -> int:
    """The helper: one request on stdin, one answer on stdout, then exit."""
    line = sys.stdin.readline()
    if not line:
        return 0  # the server ended or had nothing to ask
    try:
        job_ids = valid_job_ids(json.loads(line))
        squeue, sacct = look_up(job_ids)
        answer = {"squeue": {k: asdict(v) for k, v in squeue.items()},
                  "sacct": None if sacct is None else {k: asdict(v) for k, v in sacct.items()}}
    except SlurmUnreachable as error:
        answer = {"unreachable": str(error)}
    except (ValueError, TypeError) as error:
        answer = {"unreachable": f"the request was not a list of job ids ({error})"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


def decode(answer: dict) -> tuple:
    """The helper's answer as look_up returns it; raises SlurmUnreachable with the helper's reason."""
    if "unreachable" in answer:
        raise SlurmUnreachable(answer["unreachable"])
    squeue = {k: JobEnd(**v) for k, v in answer["squeue"].items()}
    sacct = None if answer["sacct"] is None else {k: JobEnd(**v) for k, v in answer["sacct"].items()}
    return squeue, sacct
