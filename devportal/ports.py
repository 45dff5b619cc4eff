"""A free TCP port on this machine, for the emulation's own servers (Apache, chromedriver)."""

import socket


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to 0 and release it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
