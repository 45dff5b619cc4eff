"""Symbolic links in a directory store that lead out of it, found before a conversion runs.

In a shared store anyone who can write its folders can replace a param file
with a link to the owner's ~/.ssh/id_ed25519: `mlflow migrate-filestore` and
the census both follow it, the counts match, and the key ends up in the
published SQLite file. So a conversion first looks at every link in what the
tool reads and refuses the store if one resolves outside it.

Links that stay inside the store are allowed: they reach only what the store
already holds, which everyone who can plant one can read anyway, and the tool
(confined to the store by the kernel where it has Landlock) follows them as
MLflow's FileStore did. A folder such a link reaches is then looked at in full,
since the tool may read it under names it would not otherwise read.

Not looked at: the artifacts folders of runs, logged models and traces. The
tool never reads them (artifacts stay in the directory), and the server that
serves them has its own checks. Hard links are left to the kernel:
fs.protected_hardlinks (on by default) lets nobody link a file they cannot write.
"""

from __future__ import annotations

import os
import pwd

from ..errors import LaunchError
from .walk import RESERVED_FOLDERS, TRASH, entries

ARTIFACTS = "artifacts"


def inside(root: str, path: str) -> bool:
    """True if the real path `path` is `root` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def unread_artifacts(parts: tuple) -> bool:
    """True for a folder, by its path inside the store, that the tool never reads: <experiment>/<run>/artifacts,
    <experiment>/models/<id>/artifacts, <experiment>/traces/<id>/artifacts, in .trash too."""
    if parts[:1] == (TRASH,):
        parts = parts[1:]
    if len(parts) == 3 and parts[2] == ARTIFACTS:
        return parts[1] not in RESERVED_FOLDERS
    return len(parts) == 4 and parts[1] in ("models", "traces") and parts[3] == ARTIFACTS


def outward_link(store_dir: str):
    """(link, where it leads) for the first link in the store that resolves outside it, or None."""
    root = os.path.realpath(store_dir)
    pending, looked = [(store_dir, True)], set()
    while pending:
        top, skipping = pending.pop(0)
        folders = [(top, ())]
        while folders:
            folder, parts = folders.pop()
            for entry in entries(folder):
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not inside(root, target):
                        return entry.path, target
                    if os.path.isdir(target) and target not in looked:
                        looked.add(target)
                        pending.append((target, False))  # in full: the tool may read it under any name
                elif entry.is_dir(follow_symlinks=False):
                    below = parts + (entry.name,)
                    if not (skipping and unread_artifacts(below)):
                        folders.append((entry.path, below))
    return None


def refuse_outward_links(store_dir: str) -> None:
    found = outward_link(store_dir)
    if not found:
        return
    link, target = found
    owner = link_owner(link)
    raise LaunchError(
        f"The directory store {store_dir!r} holds a symbolic link that leads out of it: {link!r} (made by {owner}) "
        f"points to {target!r}; converting would copy that file into the SQLite file, so nothing was converted",
        f"Remove the link, or put a copy of what it should hold in its place; it belongs to {owner}: if that is "
        f"not you, ask them why (anyone who can write the store's folders can plant one)")


def link_owner(link: str) -> str:
    """Who made a link (a link's owner is whoever created it)."""
    uid = os.lstat(link).st_uid
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"user ID {uid}"
