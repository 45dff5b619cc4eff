"""What the kernel lets a session's processes touch (pure): the server, and MLflow's conversion and upgrade tools.

The gate checks each route it knows; this is the second layer, for the routes
and the MLflow bugs nobody has reviewed. Whatever path MLflow builds from a
client's IDs, the kernel (landlock.py) refuses to open, create or remove
anything outside these rules:

- read and execute: the MLflow environment (the interpreter's prefixes, its
  import path, its libraries) and the system folders Python needs;
- read: the session's own folder (the gate's code, the Plan, the secret);
- write: the store's tree (for an SQLite file, the folder that holds it, where
  SQLite keeps its journal), the default artifact root, the site's
  artifact_roots, and the session's own node-local folders (a private temp
  directory, a read-only copy of the store, a temporary registry).

A read-only session gets the store and the artifact roots to read only.
Nothing else of the user's home is reachable: a symlink planted in a shared
store that points at ~/.ssh resolves to a path no rule allows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..stores.kinds import kind_of

READ, WRITE = "read", "write"
AUTO, REQUIRED = "auto", "required"  # the site key `confinement`
MODES = (AUTO, REQUIRED)

# What Python, MLflow's libraries and name look-ups read on a Debian or RHEL node; /proc for the gate's
# look-up of a local peer (/proc/net/tcp), /sys for the CPU count; /var/lib/sss for sssd's user cache.
SYSTEM_READS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/var/lib/sss")
# Devices everyone may write to, and the shared-memory folder Python's multiprocessing and gunicorn use.
SYSTEM_WRITES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/shm")
DEVICES = "/dev"  # read: the rest of /dev (e.g. /dev/fd)


@dataclass(frozen=True)
class Confinement:
    rules: tuple  # ((path, READ or WRITE), ...), in order; a later rule only adds rights

    def writable(self) -> tuple:
        return tuple(path for path, level in self.rules if level == WRITE)


@dataclass(frozen=True)
class Environment:
    """Where the running interpreter's files are: sys.prefix and friends, sys.path, LD_LIBRARY_PATH."""

    prefixes: tuple
    import_path: tuple
    library_path: tuple = ()

    @classmethod
    def of_this_process(cls) -> "Environment":
        import sys

        prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                    os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(sys.executable))
        libraries = tuple(p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p)
        return cls(prefixes, tuple(p for p in sys.path if p), libraries)


def store_tree(store_kind: str, store_path: str) -> tuple:
    """The folders that are the store (stores/kinds.py): none for a database."""
    tree = kind_of(store_kind).tree(store_path)
    return (tree,) if tree else ()


def base_rules(environment: Environment, session_dir: str) -> list:
    rules = [(path, READ) for path in SYSTEM_READS + (DEVICES,)]
    rules += [(path, READ) for path in environment.prefixes + environment.import_path + environment.library_path]
    rules += [(path, WRITE) for path in SYSTEM_WRITES]
    rules.append((session_dir, READ))
    return rules


def for_server(plan, environment: Environment, session_dir: str, own: tuple, reads: tuple = ()) -> Confinement:
    """The server's rules for a Plan (session.Plan): `own` are the folders it writes for itself (its private
    TMPDIR, its working directory), `reads` any other files it must read (a PostgreSQL store's ~/.pgpass and
    certificates)."""
    level = READ if plan.read_only else WRITE
    rules = base_rules(environment, session_dir)
    rules += [(path, READ) for path in reads]
    rules += [(path, level) for path in store_tree(plan.store_kind, plan.store_path)]
    rules += [(path, level) for path in (plan.artifact_root,) + plan.settings.artifact_roots if path]
    rules += [(path, WRITE) for path in tuple(own) + tuple(plan.scratch) if path]
    return Confinement(tuple(_unique(rules)))


def for_tool(environment: Environment, session_dir: str, reads: tuple, work_dir: str) -> Confinement:
    """An MLflow tool's rules (migrate-filestore, db upgrade): `reads` to read, only `work_dir` to write."""
    rules = base_rules(environment, session_dir) + [(path, READ) for path in reads] + [(work_dir, WRITE)]
    return Confinement(tuple(_unique(rules)))


def status_line(abi: int, reason: str = "") -> str:
    """The card's and output.log's line on what protects the user's files."""
    if abi > 0:
        return f"Files: confined to the store by the kernel (Landlock ABI {abi})"
    return f"Files: not confined by the kernel on this node ({reason or 'no Landlock'}): the gate's checks only"


def _unique(rules: list) -> list:
    seen, out = set(), []
    for path, level in rules:
        key = (os.path.normpath(path), level)
        if path and key not in seen:
            seen.add(key)
            out.append((os.path.normpath(path), level))
    return out
