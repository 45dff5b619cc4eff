"""bin/launch-local tells what it is before it does anything, and speaks in its own options."""

import subprocess
from pathlib import Path

from devportal.local_portal import launch_failure

LAUNCHER = Path(__file__).resolve().parents[1] / "bin" / "launch-local"


def test_help_names_the_command_and_every_option_and_changes_nothing():
    shown = subprocess.run(["bash", str(LAUNCHER), "--help"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: sudo bin/launch-local")
    for option in ("STORE", "--demo", "postgresql", "--mlflow", "--proxy", "--access", "--port", "--no-slurm",
                   "--help"):
        assert option in shown.stdout, option
    assert "install-deps" not in shown.stdout + shown.stderr and "apt:" not in shown.stdout, "it installed things"


def test_a_failed_launch_names_the_launchers_options():
    output = ("Script starting...\nERROR: The SQLite store '/s/m.db' has schema revision a, "
              "but MLflow 3.17.2 expects b. "
              "Fix: Choose the MLflow version your training jobs use; or choose Store access 'Read-only'.\n")
    message = launch_failure(output)
    assert message.startswith("ERROR: The SQLite store")
    assert "--mlflow 3|2" in message and "--access" in message
    assert "Traceback" not in launch_failure("Traceback (most recent call last):\n  boom\n") .split("\n")[0]
