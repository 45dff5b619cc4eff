"""Convert a directory store into an SQLite file with MLflow's own `mlflow migrate-filestore`.

The directory is never written. The converted file goes beside it, as
`<store>.db` (or `<store>-converted.db`, ... when that name is taken by
something else), made so that no half-made file ever carries that name and
nobody else can reach it while it is made: the tool writes into a private
folder (mkdtemp, mode 0700) in the store's folder, where its SQLite side files
stay too, and the kernel keeps it to reading the store and writing that folder
where it can (confined_tool). The file then gets `journal_mode=DELETE` (the
tool leaves WAL, which parallel file systems do not support) and this app's
mark, is checked against the directory by counting both sides (census.py),
gets its mode through its descriptor, and only then is linked to its name (a
link never replaces an existing file). The private folder goes whatever
happens.

A later launch on the same directory serves the converted file again if this
app made it (the mark) for this user (its owner) and it holds every run of the
directory. Any other file at that name is someone else's: a project member who
can write the folder could have put a file of their own there.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing

from ..confinement import confined_tool
from ..errors import LaunchError
from ..session import write_json
from .census import differences, directory_census, sqlite_census
from .checks import SQLITE_MAGIC
from .sqlite import connect_read_only
from .uri import URL_SPECIAL
from .walk import META, walk

# SQLite's header field for the program that made a file (PRAGMA application_id, bytes 68-71): "OODM".
# Neither MLflow, Alembic nor SQLAlchemy sets it, and it survives their writes and schema upgrades.
APPLICATION_ID = 0x4F4F444D
MAX_SUFFIX = 9


def candidate_names(store_path: str) -> list:
    return [f"{store_path}.db", f"{store_path}-converted.db"] + [
        f"{store_path}-converted-{n}.db" for n in range(2, MAX_SUFFIX + 1)]


def directory_runs(store_path: str) -> tuple:
    """The run ids of a directory store (walk.py, as the census counts them) and the bytes of what a
    conversion reads (for progress)."""
    layout = walk(store_path)
    size = sum(os.path.getsize(os.path.join(run, META)) + sum(_tree_size(os.path.join(run, sub))
                                                             for sub in ("metrics", "params", "tags"))
               for run in layout.runs)
    return layout.run_ids(), size


def holds_runs(db_path: str, run_ids: set) -> bool:
    """True if `db_path` is an MLflow SQLite store with every one of `run_ids` (a conversion of them)."""
    try:
        with connect_read_only(db_path) as db:
            found = {row[0] for row in db.execute("SELECT run_uuid FROM runs")}
            db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        return False
    return run_ids <= found


def is_ours(mode: int, owner: int, header: bytes, uid: int) -> bool:
    """True for a regular file owned by `uid` whose SQLite header carries this app's mark."""
    return (stat.S_ISREG(mode) and owner == uid and header[:len(SQLITE_MAGIC)] == SQLITE_MAGIC
            and int.from_bytes(header[68:72], "big") == APPLICATION_ID)


def made_here_for_me(db_path: str) -> bool:
    """True if `db_path` is this app's conversion made by this user: the mark and the owner, read through one
    descriptor (a link at the name is not followed; O_NONBLOCK: a planted FIFO does not hang the launch)."""
    try:
        fd = os.open(db_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        found = os.fstat(fd)
        header = os.pread(fd, 100, 0) if stat.S_ISREG(found.st_mode) else b""
    finally:
        os.close(fd)
    return is_ours(found.st_mode, found.st_uid, header, os.getuid())


def choose_target(store_path: str, run_ids: set) -> tuple:
    """(path, True) to reuse an earlier conversion, (path, False) for a free name; never a taken one."""
    for name in candidate_names(store_path):
        if not os.path.lexists(name):
            return name, False
        if made_here_for_me(name) and holds_runs(name, run_ids):
            return name, True
    raise LaunchError(
        f"Every name for the converted store is taken ({candidate_names(store_path)[0]!r} to "
        f"{candidate_names(store_path)[-1]!r}) by files that are not your conversion of {store_path!r} by this app",
        "Move one of them away, or launch with the SQLite file you want to browse",
    )


def convert(store_path: str, target: str, report_progress, size: int = 0) -> dict:
    """Make `target` from the directory store; returns the census. Raises LaunchError, leaving nothing behind.

    `size`: the bytes the tool will read (directory_runs), for its progress; counted here if not given."""
    folder = os.path.dirname(target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LaunchError(f"The directory store cannot be converted: you cannot write to {folder!r}, where "
                          f"the SQLite file would go",
                          "Ask the folder's owner, or choose Store access 'Read and write'")
    if URL_SPECIAL & set(target):
        raise LaunchError(f"MLflow's converter cannot write to {target!r}: the path has ?, # or %, which it "
                          f"reads as part of a URL", "Rename the folder or the store so its path has none of them")
    # Private (0700): nobody else can plant a link in it, open the file or its side files, or take their names.
    work = tempfile.mkdtemp(prefix=".ood-mlflow-converting-", dir=folder)
    temporary = os.path.join(work, os.path.basename(target))
    try:
        census = directory_census(store_path, lambda done, total: report_progress("counting", done, total))
        size = size or directory_runs(store_path)[1]
        _run_tool(store_path, work, temporary, census.runs, size, report_progress)
        report_progress("checking", census.runs, census.runs)
        _finish(temporary)
        converted = sqlite_census(temporary)
        wrong = differences(census, converted)
        if wrong:
            raise LaunchError(f"The converted store does not match the directory {store_path!r} ("
                              f"{'; '.join(wrong)}); the directory is unchanged and no SQLite file was kept",
                              "If a training job was logging to the directory, relaunch when it has finished; "
                              "otherwise report this output.log to your site's support")
        _publish(temporary, target, os.stat(store_path).st_mode & 0o666)
        return census.__dict__
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(temporary: str, target: str, mode: int) -> None:
    """Give the checked file its mode (through its descriptor) and then its name, never replacing a file that
    took the name meanwhile."""
    fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
        os.fsync(fd)  # the tool writes with synchronous=OFF
    finally:
        os.close(fd)
    try:
        try:
            os.link(temporary, target)
            return
        except FileExistsError:
            raise
        except OSError:
            pass  # a file system without hard links: claim the name with an empty file, then swap
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise LaunchError(f"{target!r} appeared while the store was being converted; it was not replaced",
                          "Relaunch: the session then uses that file if it is this store's conversion") from None
    os.replace(temporary, target)


def _run_tool(store_path: str, work: str, temporary: str, runs: int, size: int, report_progress) -> None:
    argv = [sys.executable, "-m", "mlflow", "migrate-filestore", "--source", store_path,
            "--target", "sqlite:///" + temporary]
    # Reads the store, writes only `work`. Unbuffered: its "Migrating experiment" line must arrive when printed.
    tool = confined_tool.popen(argv, "migrate-filestore", (store_path,), work, env={"PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, started = [], []

    def read_output():
        for line in tool.stdout:
            lines.append(line.rstrip("\n"))
            if "Migrating experiment" in line and not started:
                started.append(_bytes_read(tool.pid))  # imports are done: from here on it reads the store
    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        while tool.poll() is None:
            if started and size:
                share = (_bytes_read(tool.pid) - started[0]) / size
                report_progress("converting", min(runs, int(runs * share)), runs)
            time.sleep(0.5)
    except BaseException:  # the job is being stopped: the tool must not write on once its folder is removed
        tool.kill()
        tool.wait()
        raise
    reader.join(5)
    if tool.returncode != 0:
        sys.stdout.write("\n".join(lines[-30:]) + "\n")
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise LaunchError(f"MLflow's migrate-filestore could not convert {store_path!r} ({last.strip()[:300]}); "
                          f"the directory is unchanged and no SQLite file was kept",
                          "Read the messages just above in output.log; a damaged meta.yaml in the store is "
                          "the usual cause")


def _bytes_read(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _finish(path: str) -> None:
    """journal_mode=DELETE, and this app's mark (choose_target reuses only marked files)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        mode = db.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    if mode != "delete":
        raise LaunchError(f"The converted store could not be switched to journal_mode=DELETE (it stayed {mode})",
                          "Report this output.log to your site's support")


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass  # a dangling link: the tool skips it too
    return total


def write_progress(path, stage: str, done: int, total: int) -> None:
    """The card's view of a conversion (info.html.erb reads it while the session starts)."""
    write_json(path, {"stage": stage, "runs_done": done, "runs_total": total, "time": int(time.time())})
