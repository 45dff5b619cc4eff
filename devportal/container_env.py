"""An MLflow environment shaped like a container module, as CSC's `module load pytorch` gives one.

CSC's modules are Apptainer containers with wrapper scripts made by Tykky
(CSCfi/hpc-container-wrapper, generate_wrappers.sh): `python3` is a bash script
that does not exec, and runs `singularity exec ... bash -c "exec python3 ..."`,
so the real interpreter runs two or three processes below the process OOD's
job script started, and its /tmp is the job's TMPDIR. Apptainer does not
install here, so the wrappers keep the shape without the container: a bash
that does not exec, a shell between (where singularity would be), and the real
program exec'd by an inner `bash -c`. The environment's setup gives the job a
TMPDIR of its own (mode 0700), as a site's job_container/tmpfs does.
"""

from __future__ import annotations

from pathlib import Path

from devportal.testbed import MLFLOW_VENVS, STORES_ROOT

PROGRAMS = ("python3", "python", "mlflow")
WRAPPER = """#!/bin/bash
# {name} of a container-style module (the shape of a Tykky wrapper): no exec here; the real program runs two
# processes below this one, under another shell.
/bin/bash -c '"$@"; exit $?' outer /bin/bash -c 'exec "$0" "$@"' {real} "$@"
"""


def make(major: str) -> Path:
    """The module's bin folder for MLflow `major` (made once; the same for every test)."""
    folder = STORES_ROOT / f"container-module-mlflow{major}" / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for top in (STORES_ROOT, folder.parent, folder):
        top.chmod(0o755)
    for name in PROGRAMS:
        real = MLFLOW_VENVS[major] / "bin" / ("python3" if name == "python" else name)
        wrapper = folder / name
        wrapper.write_text(WRAPPER.format(name=name, real=real))
        wrapper.chmod(0o755)
    return folder


def setup(major: str) -> str:
    """An environment's `setup` for site.yml: a private TMPDIR for the job, then the module's wrappers."""
    return (f'export TMPDIR="/tmp/ood-mlflow-job-${{SLURM_JOB_ID:-$$}}"\n'
            f'mkdir -p -m 0700 "$TMPDIR"\n'
            f'export PATH="{make(major)}:$PATH"\n')


def environments(major: str, extra_setup: str = "") -> list:
    """site.yml's `environments` with this module as the one choice (then `extra_setup`)."""
    return [{"label": f"mlflow/{major} (container module)", "setup": setup(major) + extra_setup}]
