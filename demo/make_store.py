"""Make an MLflow tracking store with runs in it, as training jobs would.

Run it with the Python of an MLflow environment:
  python demo/make_store.py sqlite:////tmp/demo/mlruns.db
  python demo/make_store.py /tmp/demo/mlruns --runs 1000 --params 10 --metrics 10 --steps 50

Each run gets parameters, metrics logged over steps (the first is `loss`) and
a text artifact `notes.txt`. Used by the local launcher, the tests and bench/.
"""

import argparse
import math
import os
import random
import tempfile
import time

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="a directory path, sqlite:////abs/path.db or postgresql://user@host/dbname")
    parser.add_argument("--artifacts", help="the experiment's artifact location (default: beside an SQLite "
                        "file, inside a directory store; for a database, MLflow's ./mlruns)")
    parser.add_argument("--experiment", default="demo-classifier")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--params", type=int, default=3)
    parser.add_argument("--metrics", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if not args.uri.startswith(("sqlite:", "postgresql")):
        os.makedirs(args.uri, exist_ok=True)
        # MLflow 3.13+ refuses directory stores unless asked, as users' training jobs do.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=args.uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment:
        experiment_id = experiment.experiment_id
    else:
        # Artifacts of an SQLite store go beside it, where the app's server puts them too.
        location = args.artifacts
        if args.uri.startswith("sqlite:") and not location:
            store_dir = os.path.dirname(args.uri[len("sqlite:///"):])
            location = os.path.join(store_dir, "mlartifacts", args.experiment)
        experiment_id = client.create_experiment(args.experiment, artifact_location=location)
    now = int(time.time() * 1000)
    metric_names = ["loss"] + [f"metric_{i}" for i in range(1, args.metrics)]
    for r in range(args.runs):
        run = client.create_run(experiment_id, run_name=f"run-{r:05d}", start_time=now + r)
        run_id = run.info.run_id
        params = [Param(f"param_{i}", str(rng.choice([1, 2, 4, 8, 16]) * (i + 1))) for i in range(args.params)]
        params[0] = Param("lr", str(rng.choice([0.1, 0.01, 0.001])))
        metrics = []
        for name in metric_names:
            start = rng.uniform(1.0, 2.0)
            for step in range(args.steps):
                value = start * math.exp(-step / max(1, args.steps / 3)) + rng.uniform(0, 0.05)
                metrics.append(Metric(name, value, now + step, step))
        tags = [RunTag("mlflow.source.name", "train.py")]
        for i in range(0, len(metrics), 900):  # log_batch takes at most 1000 entries
            client.log_batch(run_id, metrics=metrics[i:i + 900],
                             params=params if i == 0 else [], tags=tags if i == 0 else [])
        if r < 20:  # artifacts for the first runs only: they are slow on big stores
            with tempfile.TemporaryDirectory() as tmp:
                note = os.path.join(tmp, "notes.txt")
                with open(note, "w") as fh:
                    fh.write(f"Notes for run-{r:05d}: trained with lr={params[0].value}.\n")
                client.log_artifact(run_id, note)
        client.set_terminated(run_id, end_time=now + r + 1000)
    print(f"{args.runs} runs in experiment {args.experiment!r} ({experiment_id}) of {args.uri}")


if __name__ == "__main__":
    main()
