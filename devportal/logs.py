"""The end of a log file, for error messages when a service of the emulation fails to start."""

from pathlib import Path


def tail(path, lines: int = 30) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""
