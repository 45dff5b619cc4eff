"""Counting what a directory store holds and what an SQLite store holds, to check a conversion.

After `mlflow migrate-filestore` (MLflow 3.x, mlflow/store/fs2db/) has copied a
directory store into a new SQLite file, the job compares the two censuses
rather than trusting the tool's own summary, which counts what it inserted,
not what the directory holds.

The directory is walked the way the tool walks it, so that both sides count
the same things:
- experiments and runs as walk.py finds them (deleted experiments, in
  .trash, and deleted runs, which stay in their experiment with
  lifecycle_stage "deleted", are migrated too);
- params, tags, metrics: every file under params/, tags/, metrics/, recursing
  because a key with "/" is a subfolder; metric files count one point a line.
  The tool copies tag files as they are: the mlflow.runName tag is a file the
  FileStore itself wrote (2.x and 3.x alike), and no tag is added or dropped.

A meta.yaml the tool cannot parse makes it skip that experiment or run with
only a log line. It is not parsed here, so such a loss shows as a difference.
Other faults make the tool fail as a whole (exit status 1, an empty schema
left in the target), e.g. a metric value logged twice with the same timestamp
and step, which the SQL store's primary key refuses: check its exit status first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .sqlite import connect_read_only
from .walk import entries, walk

PROGRESS_EVERY = 200


@dataclass(frozen=True)
class Census:
    experiments: int = 0
    runs: int = 0
    params: int = 0
    tags: int = 0  # run tags and experiment tags together (experiment descriptions are tags)
    metric_points: int = 0  # every logged value of every metric, the full history


def directory_census(store_dir: str, progress=None) -> Census:
    """The census of a FileStore directory; progress(runs_done, runs_total) is called as runs are read.

    `store_dir` is counted as given: the tool would migrate store_dir/mlruns
    instead if that existed, and a difference is then what we want to see.
    """
    layout = walk(store_dir)
    experiments, runs = layout.experiments, layout.runs
    tags = sum(1 for experiment in experiments for _ in _files(os.path.join(experiment, "tags")))
    params = metric_points = 0
    for done, run in enumerate(runs, 1):
        params += sum(1 for _ in _files(os.path.join(run, "params")))
        tags += sum(1 for _ in _files(os.path.join(run, "tags")))
        for path in _files(os.path.join(run, "metrics")):
            # As the tool reads them: str.splitlines(). A line it cannot parse aborts the
            # whole migration, NaN and ±inf are stored (as is_nan / ±max float), so every line counts.
            with open(path, encoding="utf-8") as fh:
                metric_points += len(fh.read().splitlines())
        if progress and (done % PROGRESS_EVERY == 0 or done == len(runs)):
            progress(done, len(runs))
    if progress and not runs:
        progress(0, 0)
    return Census(len(experiments), len(runs), params, tags, metric_points)


def sqlite_census(db_path: str) -> Census:
    """The census of an MLflow SQLite store, opened read-only.

    Take it before an MLflow server opens the file: MLflow's SQL store adds a
    "Default" experiment 0 when there is none, and a directory store made by
    MLflow through create_experiment() into an existing folder has none.
    The tool leaves the file in WAL mode, so even this read-only connection
    leaves an empty -wal and a -shm file beside it, for the caller to remove.
    """
    with connect_read_only(db_path) as db:
        def count(table: str) -> int:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return Census(experiments=count("experiments"), runs=count("runs"), params=count("params"),
                      tags=count("tags") + count("experiment_tags"), metric_points=count("metrics"))


def differences(a: Census, b: Census) -> list[str]:
    """One line for each count that differs between the directory's census `a` and the SQLite
    file's `b`, e.g. "runs: 10 in the directory, 9 in the SQLite file"."""
    return [f"{field.name}: {getattr(a, field.name)} in the directory, {getattr(b, field.name)} in the SQLite file"
            for field in fields(Census) if getattr(a, field.name) != getattr(b, field.name)]


def _files(path: str):
    """Every file below `path`, as the tool's Path.rglob("*") + is_file() finds them."""
    for entry in entries(path):
        if entry.is_file():
            yield entry.path
        elif entry.is_dir(follow_symlinks=False):  # rglob does not descend into linked folders
            yield from _files(entry.path)
