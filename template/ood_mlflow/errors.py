"""The one-line messages a failed launch leaves in output.log.

The contract: a launch that cannot work ends with exactly one line that starts
with `ERROR:` and names the cause and the fix; completed.html.erb shows it on
the session card. Warnings start with `WARNING:` the same way.
"""

from __future__ import annotations

import sys

from .session import EXIT_REASON_FILE, MESSAGES_FILE, SESSION_DIR


class LaunchError(Exception):
    """Why a session cannot start (`cause`) and what the user can do (`fix`)."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}. {fix}")
        self.cause = cause.rstrip(".")
        self.fix = fix.rstrip(".")

    @property
    def line(self) -> str:
        return one_line("ERROR", f"{self.cause}. Fix: {self.fix}.")


def one_line(label: str, text: str) -> str:
    # A message is one line whatever the paths in it hold.
    flat = str(text).replace("\r", " ").replace("\n", " ")
    return f"{label}: {flat}"


def report(error: LaunchError) -> None:
    print(error.line, file=sys.stdout, flush=True)
    _keep(error.line, EXIT_REASON_FILE)


def warn(text: str) -> str:
    """Print the WARNING line and keep it for the card; returns it (for a card file of a confined step's own)."""
    print(one_line("WARNING", text), file=sys.stdout, flush=True)
    _keep(one_line("WARNING", text))
    return one_line("WARNING", text)


def _keep(line: str, also: str = "") -> None:
    """Add the line to the job's own messages (and to `also`) for the card; output.log already has it."""
    try:
        with open(SESSION_DIR / MESSAGES_FILE, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if also:
            with open(SESSION_DIR / also, "w", encoding="utf-8") as fh:
                fh.write(line + "\n")
    except OSError:
        pass  # a confined server cannot write the session folder; its lines are in output.log
