"""A free TCP port on this machine, for the emulation's own servers (Apache, chromedriver)."""

import socket


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to 0 and release it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair(low: int = 20000, high: int = 30000) -> int:
    """A port P such that P and P+1 were both free a moment ago, below the ephemeral range (32768 and up), so no
    outgoing connection takes either before a daemon binds it (slurmctld on P, slurmd on P+1)."""
    import random

    for _ in range(200):
        port = random.randrange(low, high)
        sockets = [socket.socket() for _ in range(2)]
        try:
            for offset, s in enumerate(sockets):
                s.bind(("0.0.0.0", port + offset))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no two free ports next to each other in {low}-{high}")
