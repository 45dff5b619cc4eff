"""What the readiness check reports when the server dies."""

from ood_mlflow.ready import last_problem


def test_the_last_problem_in_the_log_names_the_cause(tmp_path):
    log = tmp_path / "output.log"
    log.write_text("Script starting...\nTraceback (most recent call last):\n  File x\n"
                   "RuntimeError: boom\n2026/01/01 INFO:     Shutting down\nWARNING: ignore me\n")
    assert last_problem(log) == "RuntimeError: boom"
    assert last_problem(tmp_path / "missing.log") == ""
