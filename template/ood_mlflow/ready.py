"""Wait in after.sh until the UI answers through the gate, as the browser will reach it.

An open port is not enough: MLflow's workers import for seconds after the port
opens, and a store problem only shows on the first request. So this logs in
with the session secret, loads the UI page and lists experiments. It gives up
early when the server process has died, and at the time limit.
"""

from __future__ import annotations

import http.client
import os
import pwd
import time
from urllib.parse import urlencode

from .errors import LaunchError, report
from .gate.peers import listener_uids
from .plan import read_plan
from .server.processes import process_alive
from .session import COOKIE_NAME, LOG_FILE, LOGIN_FIELD, SESSION_DIR, read_secret


def probe(host: str, port: int, prefix: str, secret: str) -> bool:
    """One attempt: login, UI page, experiments API. True when all three answer."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("POST", prefix + "/login", urlencode({LOGIN_FIELD: secret}),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        cookie = response.getheader("Set-Cookie", "").split(";")[0]
        if response.status != 303 or not cookie.startswith(COOKIE_NAME + "="):
            return False
        for path in ("/", "/ajax-api/2.0/mlflow/experiments/search?max_results=1"):
            conn.request("GET", prefix + path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                return False
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


PROBLEM_WORDS = ("Error", "ERROR", "Exception", "error:")


def last_problem(log_path) -> str:
    """The last line of the job's log that reports a problem, to name the cause in the ERROR line."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if any(word in line for word in PROBLEM_WORDS) and not line.startswith(("ERROR:", "WARNING:")):
            return line.strip()[:300]
    return ""


def port_holder_error(port: int, uids: set) -> LaunchError:
    names = ", ".join(sorted(_user_name(uid) for uid in uids))
    return LaunchError(
        f"Another process (of user {names}) holds port {port}, which this session chose for MLflow; "
        f"the session's secret was not sent to it",
        "Relaunch the session: it will choose another port. If it happens again, tell your site's support "
        "that someone is taking ports on that node",
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def ours_listening(port: int) -> bool:
    """True once the port listens and every socket listening on it is this user's.

    The secret goes only to our own server: another user on the node could bind
    the port before MLflow does (on the CLI path ps shows it on MLflow's command line)."""
    uids = listener_uids(port)
    foreign = uids - {os.getuid()}
    if foreign:
        raise port_holder_error(port, foreign)
    return bool(uids)


def wait_until_ready(host, port, prefix, secret, timeout, server_pid, log_path=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listening = ours_listening(port)
        if server_pid and not process_alive(server_pid):
            problem = last_problem(log_path) if log_path else ""
            raise LaunchError(
                "The MLflow server stopped while starting"
                + (f" ({problem}; more just above in output.log)" if problem else
                   " (its messages are just above in output.log)"),
                "Read those messages; if the store is fine, relaunch, and if it happens again, "
                "report it to your site's support with this output.log",
            )
        if listening and probe(host, port, prefix, secret):
            return
        if time.monotonic() > deadline:
            raise LaunchError(
                f"The MLflow UI did not answer within {timeout} seconds",
                "Relaunch (the first start on a busy file system can be slow); if it happens again, "
                "ask your site's administrators to raise start_timeout in the app's site.yml",
            )
        time.sleep(0.25)


def main(server_pid: int) -> int:
    plan = read_plan()
    try:
        # Over loopback: the gate knows a local connection's owner (gate/peers.py), so this
        # check passes even where only the portal's proxies may reach the UI.
        wait_until_ready("127.0.0.1", plan.port, plan.prefix, read_secret(), plan.settings.start_timeout, server_pid,
                         SESSION_DIR / LOG_FILE)
    except LaunchError as error:
        report(error)
        return 1
    print("The MLflow UI answers through the login gate.", flush=True)
    return 0
