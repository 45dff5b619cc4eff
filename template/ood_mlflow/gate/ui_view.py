"""Open MLflow 3.x's UI on the site's default view in every new session (pure).

MLflow 3.x keeps the experiment page's view (GenAI traces or model-training
runs) in the browser's localStorage, `mlflow.workflowType_v1`, which all OOD
sessions share (one portal origin), and starts on GenAI. The gate adds a few
lines to the UI's index page that set the site's default once per browser tab:
each Connect opens a new tab, so every session starts on the default, and a
switch the user makes later in that tab stays (sessionStorage marks the tab).
MLflow 2.x has no such view; the lines do nothing there.
"""

from __future__ import annotations

import json
import re

STORAGE_KEY = "mlflow.workflowType_v1"
TAB_MARK = "ood_mlflow_view_set"
# The first screen a researcher sees, set the same way (MLflow 3.17's useLocalStorage keys, `<key>_v<version>`):
# the Assistant panel closed and not opened by itself (the session refuses the assistant), the telemetry notice
# dismissed (the session switches telemetry off), and "Getting Started" folded, whose "Start Demo" would write
# MLflow's sample experiments into the researcher's, maybe a project's, store (the gate refuses it too).
FIRST_SCREEN = {
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
    "mlflow.telemetry.info.alert.dismissed_v1": True,
    "mlflow.home.getting-started.collapsed_v1": True,
}


def snippet(view: str) -> bytes:
    stored = dict(FIRST_SCREEN, **{STORAGE_KEY: view})
    # localStorage holds JSON; the script holds each value as a JS string
    sets = "".join("localStorage.setItem(%s,%s);" % (json.dumps(key), json.dumps(json.dumps(value)))
                   for key, value in stored.items())
    return ("<script>try{if(!sessionStorage.getItem(%s)){%s"
            "sessionStorage.setItem(%s,\"1\")}}catch(e){}</script>"
            % (json.dumps(TAB_MARK), sets, json.dumps(TAB_MARK))).encode()


def with_view(page: bytes, view: str) -> bytes:
    """The UI's index page with the snippet as the first thing in <head> (before MLflow's scripts)."""
    match = re.search(rb"<head[^>]*>", page, re.IGNORECASE)
    at = match.end() if match else 0
    return page[:at] + snippet(view) + page[at:]
