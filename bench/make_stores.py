"""Make the benchmark's stores once: an SQLite store and a directory store of the
given sizes (10 params, 10 metrics x 50 steps per run), written by real MLflow
through demo/make_store.py, owned by the user whose sessions open them.

    python -m bench.make_stores --sqlite-runs 10000 --file-runs 1000
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from devportal.ood import APP_ROOT
from devportal.testbed import OWNER, mlflow_python, own_tree

ROOT = Path("/srv/ood-mlflow-bench")
SHAPE = ["--params", "10", "--metrics", "10", "--steps", "50"]


def store_path(kind: str, runs: int, major: str = "3") -> str:
    # Named by the MLflow major that writes it: a 2.22 store is not at 3.17's schema, and 3.17's naive
    # `mlflow server` would upgrade it in place.
    directory = ROOT / f"mlflow{major}-{kind}-{runs}"
    return str(directory / ("mlruns.db" if kind == "sqlite" else "mlruns"))


def make(kind: str, runs: int, major: str = "3") -> str:
    """The store's path; made only if it is not complete yet (a marker file says so)."""
    path = store_path(kind, runs, major)
    directory = Path(path).parent
    done = directory / ".complete"
    made_as = f"{runs} runs {' '.join(SHAPE)}\n"  # a store made with another shape is made again
    if not done.exists() or done.read_text() != made_as:
        subprocess.run(["rm", "-rf", str(directory)], check=True)
        directory.mkdir(parents=True)
        target = f"sqlite:///{path}" if kind == "sqlite" else path
        print(f"making {kind} store with {runs} runs at {path} ...", flush=True)
        made = subprocess.run([str(mlflow_python(major)), str(APP_ROOT / "demo/make_store.py"), target,
                               "--runs", str(runs)] + SHAPE, cwd=directory, capture_output=True, text=True)
        assert made.returncode == 0, f"demo/make_store.py failed:\n{made.stdout[-2000:]}{made.stderr[-3000:]}"
        done.write_text(made_as)
    ROOT.chmod(0o755)
    own_tree(directory, OWNER)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-runs", type=int, default=10000)
    parser.add_argument("--file-runs", type=int, default=1000)
    args = parser.parse_args()
    print(make("sqlite", args.sqlite_runs))
    print(make("file", args.file_runs))


if __name__ == "__main__":
    main()
