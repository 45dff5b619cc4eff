"""Where a session keeps what it makes on the compute node, and whether it fits there.

Sites give jobs node-local space in $TMPDIR, and some in $LOCAL_SCRATCH (CSC's
NVMe, asked for with --gres=nvme:<GB>), which is the faster and the larger one:
a read-only copy of a store, a temporary registry and the server's temp folder
go there, never into a shared folder. A copy that would not fit ends the launch
before anything is written, with the size it needs and the site's way to ask
for more (the site key node_local_hint).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import LaunchError

MARGIN = 64 * 2 ** 20  # room for SQLite's journal and MLflow's own temp files beside the copy


def folder() -> str:
    """$LOCAL_SCRATCH where the site sets it to a folder, else $TMPDIR (Python's temp folder otherwise)."""
    local = os.environ.get("LOCAL_SCRATCH", "")
    return local if local and os.path.isdir(local) else tempfile.gettempdir()


def make_folder(prefix: str) -> str:
    """A private (0700) folder of the session's in the node-local space."""
    return tempfile.mkdtemp(prefix=prefix, dir=folder())


def megabytes(size: int) -> str:
    return f"{max(1, round(size / 2 ** 20))} MB"


def check_room(needed: int, what: str, hint: str, where: str = "") -> None:
    """LaunchError unless `needed` bytes (and a margin) fit in the node-local space."""
    where = where or folder()
    free = shutil.disk_usage(where).free
    if free >= needed + MARGIN:
        return
    fix = hint.strip() or "ask your site's support how to get more node-local disk for a job"
    raise LaunchError(f"There is not enough node-local space for {what}: it needs {megabytes(needed + MARGIN)} in "
                      f"{where}, which has {megabytes(free)} free",
                      f"Launch again with more local disk ({fix}), or choose Store access 'Read and write'")
