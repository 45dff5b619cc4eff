"""Open MLflow 3.x's UI on the site's default view in every new session (pure).

MLflow 3.x keeps the experiment page's view (GenAI traces or model-training
runs) in the browser's localStorage, `mlflow.workflowType_v1`, which all OOD
sessions share (one portal origin), and starts on GenAI. The gate adds a few
lines to the UI's index page that set the site's default once per browser tab:
each Connect opens a new tab, so every session starts on the default, and a
switch the user makes later in that tab stays (sessionStorage marks the tab).
MLflow 2.x has no such view; the lines do nothing there.

The same answer gets the page's Content-Security-Policy (index_page), since the
gate is what serves the page that runs MLflow's UI.
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


# Each site default_view (settings.DEFAULT_VIEWS are these keys) as the value MLflow's UI keeps under STORAGE_KEY.
STORED_VIEWS = {"training": "machine_learning", "genai": "genai"}


def snippet(view: str) -> bytes:
    stored = dict(FIRST_SCREEN, **{STORAGE_KEY: STORED_VIEWS[view]})
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


# The UI page's Content-Security-Policy: scripts only from the session, no eval of strings (so a planted file
# cannot make a viewer in the UI turn its text into code), nothing framed in or by another site. Inline scripts
# stay (MLflow's page and the snippet above have them); workers may come from blob: (pdf.js).
_UI_PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'{eval} blob:; worker-src 'self' blob:; "
                   "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
                   "connect-src 'self'; frame-src 'self' blob: data:; object-src 'none'; base-uri 'self'; "
                   "form-action 'self'; frame-ancestors 'self'")
UI_PAGE_POLICY = _UI_PAGE_POLICY.format(eval="")
# MLflow 2.22's UI evaluates strings as it starts ("Something went wrong" without 'unsafe-eval'), so its page
# keeps eval; its pdf.js 2.1 (CVE-2024-4367) gets no PDF from the gate instead (policy.NO_PDF_PREVIEW).
UI_PAGE_POLICY_WITH_EVAL = _UI_PAGE_POLICY.format(eval=" 'unsafe-eval'")


def ui_evaluates_strings(mlflow_version: str) -> bool:
    """MLflow 2.x's UI: its page keeps 'unsafe-eval', so the gate keeps PDFs from its viewer instead."""
    return mlflow_version.split(".")[0] in ("", "1", "2")


def page_policy(mlflow_version: str) -> str:
    return UI_PAGE_POLICY_WITH_EVAL if ui_evaluates_strings(mlflow_version) else UI_PAGE_POLICY


# What described MLflow's page and no longer describes the gate's: its length, caching and policy.
_STALE = ("content-length", "cache-control", "etag", "last-modified", "content-security-policy")


def index_page(status: int, headers: list, body: bytes, view: str, policy: str = UI_PAGE_POLICY) -> tuple:
    """(headers, body) of MLflow's answer to the UI's index page with the snippet and the page's policy; any other
    answer (an error, a compressed page) unchanged. Headers are (str, str) pairs."""
    names = {k.lower(): v for k, v in headers}
    if status != 200 or not names.get("content-type", "").startswith("text/html") or "content-encoding" in names:
        return headers, body
    body = with_view(body, view)
    # Never cached: the next session's page has the same address and another view.
    return [(k, v) for k, v in headers if k.lower() not in _STALE] + [
        ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
        ("Content-Security-Policy", policy)], body
