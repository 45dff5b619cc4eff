"""The one-line messages a failed launch leaves in output.log.

The contract: a launch that cannot work ends with exactly one line that starts
with `ERROR:` and names the cause and the fix; completed.html.erb shows it on
the session card. Warnings start with `WARNING:` the same way.
"""

from __future__ import annotations

import sys


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


def warn(text: str) -> None:
    print(one_line("WARNING", text), file=sys.stdout, flush=True)
