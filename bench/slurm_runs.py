"""Time the session's look-up of RUNNING runs whose Slurm job has ended, on a store as it is.

Run it with the MLflow environment's Python and the app's package on the path, as the user
who owns the store:

    PYTHONPATH=template /opt/ood-mlflow/venv-mlflow3/bin/python bench/slurm_runs.py \\
        sqlite:////srv/ood-mlflow-bench/mlflow3-sqlite-10000/mlruns.db [--linked 100]

It prints the time of each step the server's look-up thread takes (ood_mlflow/slurm/sweep.py): the search
for RUNNING runs linked to jobs, and, only when some are, the one squeue (and sacct) call.
`--linked N` first copies the store (the original is not changed) and marks N of its runs
RUNNING with a `slurm.job_id` of jobs Slurm no longer knows, to time the Slurm call too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    parser.add_argument("--linked", type=int, default=0)
    args = parser.parse_args()
    began = time.monotonic()
    from mlflow.tracking import MlflowClient

    from ood_mlflow.slurm import lookup, runs, sweep

    imported = time.monotonic() - began
    uri = args.uri
    if args.linked:
        if not uri.startswith("sqlite:///"):
            parser.error("--linked copies an SQLite store only")
        copy = os.path.join(tempfile.mkdtemp(prefix="ood-mlflow-bench-"), "mlruns.db")
        shutil.copyfile(uri[len("sqlite:///"):], copy)
        uri = "sqlite:///" + copy
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs(["0", "1"], max_results=args.linked)
        for number, run in enumerate(runs):
            client.set_tag(run.info.run_id, runs.JOB_TAG, str(900000 + number))
            client.update_run(run.info.run_id, "RUNNING")
    client = MlflowClient(tracking_uri=uri)
    total = sum(1 for _ in _all_runs(client))
    started = time.monotonic()
    linked, running = sweep.running_linked_runs(client)
    searched = time.monotonic() - started
    print(f"store: {uri} ({total} runs, {running} RUNNING, {len(linked)} linked to Slurm jobs)")
    print(f"MLflow import (the server has it already): {imported:.2f} s")
    print(f"search for RUNNING runs linked to jobs: {searched:.3f} s")
    if linked:
        started = time.monotonic()
        try:
            squeue, sacct = lookup.look_up(sorted({run.job_id for run in linked}))
            ended = runs.ended_runs(linked, squeue, sacct)
            print(f"squeue/sacct for {len(linked)} jobs: {time.monotonic() - started:.3f} s, {len(ended)} ended")
        except lookup.SlurmUnreachable as error:
            print(f"Slurm unreachable: {error}")
    else:
        print("no Slurm call (nothing linked)")
    return 0


def _all_runs(client):
    from mlflow.entities import ViewType

    for experiment in client.search_experiments(view_type=ViewType.ALL):
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=50000,
                                      page_token=token)
            yield from page
            token = page.token
            if not token:
                break


if __name__ == "__main__":
    sys.exit(main())
