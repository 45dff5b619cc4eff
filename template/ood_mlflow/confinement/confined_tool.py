"""Starting MLflow's own tools (migrate-filestore, db upgrade) as children the kernel confines where it has Landlock.

preflight runs them on stores in shared folders, where a project member may
have planted a symlink at what they read or write. Confined as
confinement.for_tool says, a tool reads only the MLflow environment, the system
folders, the session's folder and what the caller names, and writes only its
work folder, where its working directory and TMPDIR are too (SQLite's
temporary files go there): a planted link that leads elsewhere fails with
EACCES inside the tool, whatever it does. The child confines itself between
fork and exec (preexec_fn; preflight has no other thread then). Where the
kernel has no Landlock the tool runs as before.

A file the tool must open read-write (`must_open`: the store `mlflow db
upgrade` upgrades) is opened once in the confined child before MLflow starts:
a link planted there after preflight's checks ends the tool at once with
UNREACHABLE, instead of after MLflow's ten retries of its database open
(about 100 s) and a page of its messages.
"""

from __future__ import annotations

import functools
import os
import subprocess

from ..errors import LaunchError
from ..session import SESSION_DIR
from . import landlock
from .rules import Environment, for_tool

UNREACHABLE = 75  # the tool's exit status when a must_open file is out of its bounds (EX_TEMPFAIL)


def popen(argv: list, name: str, reads: tuple, work_dir: str, temp_dir: str = "", env: dict = None,
          must_open: tuple = (), **options) -> subprocess.Popen:
    """Start `argv` (MLflow's tool `name`) reading `reads`, writing only `work_dir`; options go to Popen.

    `temp_dir`, a private folder inside `work_dir`, is the tool's working directory and TMPDIR when given
    (`work_dir` itself otherwise)."""
    temp_dir = temp_dir or work_dir
    environment = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", TMPDIR=temp_dir, SQLITE_TMPDIR=temp_dir,
                       **(env or {}))
    abi = landlock.abi_version()
    confine = None
    if abi > 0:
        rules = for_tool(Environment.of_this_process(), str(SESSION_DIR), tuple(reads), work_dir)
        confine = functools.partial(_confine, rules, abi, tuple(must_open))
    try:
        return subprocess.Popen(argv, env=environment, cwd=temp_dir, preexec_fn=confine,
                                stdin=subprocess.DEVNULL, **options)
    except subprocess.SubprocessError:
        # Only preexec_fn raises this: the kernel offers Landlock but refused these rules.
        raise LaunchError(f"MLflow's {name} could not be started: the kernel offers Landlock (ABI {abi}) but "
                          f"refused to confine it to {work_dir!r}; nothing was changed",
                          "Report this output.log to your site's support") from None


def _confine(rules, abi: int, must_open: tuple) -> None:
    """In the child, before exec: confine it, then open what it must reach (ending it with UNREACHABLE if not)."""
    landlock.restrict(rules, abi)
    for path in must_open:
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except OSError:
            os._exit(UNREACHABLE)  # no exec, no error pipe write: the parent sees this exit status
