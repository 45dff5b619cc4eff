"""Web workers forked from the process that imported MLflow: several servers on one socket, one import.

A session of 4+ cores gets one web worker per two cores (cli.workers_for). `mlflow server` starts
each worker as a new interpreter that imports MLflow again (~250 MB each). Here the job's process imports
MLflow once, builds the app, opens the listening socket, and forks the workers: they share its memory
copy-on-write, and the kernel hands each connection to one of them.

This process stays as the workers' parent: SIGTERM (Cancel, the time limit, the clean step) goes on to every
worker; a worker that dies is replaced, unless they keep dying, which ends the session.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import time

RESTARTS_PER_MINUTE = 5  # more worker deaths than this in a minute: something is wrong, end the session
STOP_GRACE_S = 10  # after SIGTERM, how long the workers get before SIGKILL
BACKGROUND = -1  # the index of the process that runs the background job


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket every worker accepts on, bound before any fork (as gunicorn's and uvicorn's masters do)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def close_database_pools() -> int:
    """Close every pooled database connection this process holds (the CLI's store set-up opened them), so no two
    workers ever talk over one SQLite handle or PostgreSQL socket: each worker's pool opens its own."""
    engine_type = getattr(sys.modules.get("sqlalchemy.engine"), "Engine", None)
    if engine_type is None:
        return 0
    engines = [found for found in gc.get_objects() if isinstance(found, engine_type)]
    for engine in engines:
        engine.dispose()
    return len(engines)


def parent_death_signal(number: int = signal.SIGTERM) -> None:
    """Ask the kernel for `number` when this process's parent dies (PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, number, 0, 0, 0)
    except (OSError, AttributeError):
        return


def _start_worker(serve_one, sock) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the worker's server installs its own handler
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        parent_death_signal()
        serve_one(sock)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - a worker's traceback goes to output.log, then it ends
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve_forked(workers: int, sock: socket.socket, serve_one, background=None) -> int:
    """Fork `workers` processes that each run serve_one(sock), and one that runs background() if given (not
    replaced when it ends); supervise them until SIGTERM. Returns the exit code."""
    close_database_pools()
    gc.collect()
    gc.freeze()  # the collector would otherwise touch, and so copy, every inherited object in each worker
    stopping = []
    running = {}

    def stop(number, frame):
        stopping.append(number)
        for pid in running:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if background:  # first, so that what it holds (release) is not inherited by the workers too
        running[_start_worker(lambda _: background(), sock)] = BACKGROUND
        getattr(background, "release", lambda: None)()
    for index in range(workers):
        running[_start_worker(serve_one, sock)] = index
    pids = " ".join(str(pid) for pid, index in running.items() if index != BACKGROUND)
    print(f"Web workers: {workers} forked after MLflow's one import (pids {pids})", flush=True)
    deaths, failed = [], False
    while any(index != BACKGROUND for index in running.values()) and not stopping:
        pid, status = os.wait()
        index = running.pop(pid, None)
        if index in (None, BACKGROUND) or stopping:
            continue
        deaths = [t for t in deaths if t > time.monotonic() - 60] + [time.monotonic()]
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
        if len(deaths) > RESTARTS_PER_MINUTE:
            print(f"ERROR: MLflow's web workers keep ending ({how}; {len(deaths)} in a minute). See the lines "
                  f"above in output.log; ask for more memory if they were killed.", flush=True)
            failed = True
            stop(signal.SIGTERM, None)
            break
        print(f"Web worker {index + 1} (pid {pid}) ended ({how}); starting another", flush=True)
        running[_start_worker(serve_one, sock)] = index
    _reap(running)
    return 1 if failed else 0


def _reap(running: dict) -> None:
    """Wait for the workers SIGTERM was sent to; SIGKILL those that do not end in time."""
    deadline = time.monotonic() + STOP_GRACE_S
    while running:
        for pid in list(running):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                running.pop(pid)
        if running and time.monotonic() > deadline:
            for pid in running:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = float("inf")
        time.sleep(0.05)
