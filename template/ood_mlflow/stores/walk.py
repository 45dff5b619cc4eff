"""The one walk of a directory store's experiments and runs, as `mlflow migrate-filestore` finds them.

Both the conversion's census (census.py) and the test for an earlier
conversion to reuse (conversion.directory_runs) take their runs from
here: when they walked apart, a conversion lacking runs that the census counts
could be served as current.

- experiments: the folders with an integer name (the tool's test is int(name),
  which also takes " 1") at the top and in .trash, that have a meta.yaml;
- runs: the subfolders of an experiment, other than its reserved folders, that
  have a meta.yaml; a run's ID is its folder's name.
Folders are followed through symbolic links, as the tool's Path.is_dir() does.
A conversion refuses links that lead out of the store before anything runs
(links.py), so whatever a link reaches here is the store's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import LaunchError

# Folders inside an experiment that are not runs (fs2db/_tracking.py RESERVED_FOLDERS).
RESERVED_FOLDERS = {"tags", "datasets", "traces", "models", ".trash"}
TRASH = ".trash"
META = "meta.yaml"


@dataclass(frozen=True)
class Layout:
    experiments: tuple  # experiment folders, top ones first, then those in .trash
    runs: tuple  # run folders, experiment by experiment

    def run_ids(self) -> set:
        return {os.path.basename(path) for path in self.runs}


def walk(store_dir: str) -> Layout:
    experiments = [entry.path for top in (store_dir, os.path.join(store_dir, TRASH)) for entry in subdirs(top)
                   if is_int(entry.name) and os.path.isfile(os.path.join(entry.path, META))]
    runs = [entry.path for experiment in experiments for entry in subdirs(experiment)
            if entry.name not in RESERVED_FOLDERS and os.path.isfile(os.path.join(entry.path, META))]
    return Layout(tuple(experiments), tuple(runs))


def is_int(name: str) -> bool:
    try:
        int(name)
    except ValueError:
        return False
    return True


def subdirs(path: str) -> list:
    """The folders in `path`, links to folders included (DirEntry.is_dir() follows them, as the tool does)."""
    return [entry for entry in entries(path) if entry.is_dir()]


def entries(path: str) -> list:
    """What `path` holds, sorted by name; nothing if it is missing or no folder; a folder the user cannot read
    ends the launch (the tool would stop at it, and a walk that skipped it would miss runs)."""
    try:
        with os.scandir(path) as found:
            return sorted(found, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError:
        raise LaunchError(f"The directory store cannot be read in full: you cannot read {path!r}",
                          "Ask the folder's owner to let the project read it (chmod -R g+rX), or launch "
                          "with a store you can read in full") from None
