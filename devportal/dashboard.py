"""The session card as the dashboard page shows it, served by the OOD-like Apache.

The real dashboard puts the rendered view.html.erb (and the info panel) into
the card of a running session on /pun/sys/dashboard/batch_connect/sessions.
Here that page is a static file in the Apache's docroot, so the browser opens
it from the portal's origin and the Connect form posts to /rnode or /node on
that same origin, as it does on a real portal.
"""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

from .ood import Session, ruby_render

SESSIONS_PATH = "/pun/sys/dashboard/batch_connect/sessions"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>My Interactive Sessions - Open OnDemand</title>
<style>
body {{ font-family: "DejaVu Sans", sans-serif; margin: 2em; background: #f5f5f5; color: #222; }}
.card {{ background: #fff; border: 1px solid #ccc; border-radius: 6px; max-width: 900px; }}
.card-header {{ background: #e8f0e8; padding: .6em 1em; border-bottom: 1px solid #ccc; }}
.card-body {{ padding: 1em; }}
.badge {{ background: #2a7a2a; color: #fff; border-radius: 4px; padding: .1em .5em; font-size: .85em; }}
.btn-primary {{ background: #0d6efd; color: #fff; border: 0; border-radius: 4px; padding: .5em 1em; font-size: 1em;
  cursor: pointer; }}
code {{ background: #f0f0f0; padding: .1em .3em; }}
.alert-danger {{ background: #f8d7da; color: #58151c; padding: .6em; border-radius: 4px; }}
</style></head>
<body><h1>My Interactive Sessions</h1>
<div class="card session-card" data-id="{id}">
<div class="card-header"><strong>MLflow</strong> ({job}) <span class="badge">{status}</span></div>
<div class="card-body">
<p><strong>Host:</strong> {host}</p>
<div class="info-panel">{info}</div>
<div class="view-panel">{view}</div>
</div></div></body></html>
"""


def make_docroot() -> Path:
    """A docroot Apache's workers (www-data) can read."""
    root = Path(tempfile.mkdtemp(prefix="ood-portal-"))
    root.chmod(0o755)
    return root


def publish_card(session: Session, docroot: Path, job_id: str = "") -> str:
    """Write the card page of a running (or completed) session; returns its URL path."""
    running = session.connection_file.exists()
    host = session.connection()["host"] if running else ""
    page = PAGE.format(
        id=html.escape(session.id), job=html.escape(job_id or "local"),
        status="Running" if running else "Completed", host=html.escape(str(host)),
        info=session.render_info("running" if running else "completed"),
        view=session.render_view() if running else session.render_completed(),
    )
    return write_page(docroot, f"{SESSIONS_PATH}/{session.id}.html", page)


def write_page(docroot: Path, url_path: str, text: str) -> str:
    """Put a page where the Apache serves `url_path` (it serves the docroot at /pun/), readable by
    its workers; returns `url_path`."""
    target = docroot / url_path[len("/pun/"):]
    target.parent.mkdir(parents=True, exist_ok=True)
    for parent in [target.parent, *target.parent.parents]:
        if parent == docroot.parent:
            break
        os.chmod(parent, 0o755)
    target.write_text(text)
    target.chmod(0o644)
    return url_path


FORM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MLflow - Open OnDemand</title>
<style>
body {{ font-family: "DejaVu Sans", sans-serif; margin: 2em; background: #f5f5f5; color: #222; max-width: 760px; }}
.form-group {{ margin-bottom: 1em; }} label {{ font-weight: bold; display: block; margin-bottom: .3em; }}
input, select {{ width: 100%; padding: .4em; font-size: 1em; box-sizing: border-box; }}
.help {{ color: #555; font-size: .9em; }} .help p {{ margin: .3em 0; }}
code {{ background: #eaeaea; padding: .1em .3em; }}
.btn-primary {{ background: #0d6efd; color: #fff; border: 0; border-radius: 4px; padding: .6em 1.2em; font-size: 1em;
  width: auto; }}
</style></head>
<body><h1>{title}</h1>
<form>{fields}
<button class="btn-primary" type="button">Launch</button></form></body></html>
"""


def publish_form(form: dict, docroot: Path) -> str:
    """The launch form as the dashboard lays it out (labels, widgets, Markdown help); returns its URL path."""
    parts = []
    for name in form["form"]:
        spec = form["attributes"].get(name, {})
        if not isinstance(spec, dict) or spec.get("widget") == "hidden_field":
            continue  # fixed or hidden: not shown
        widget = spec.get("widget", "text_field")
        label = html.escape(spec.get("label", name.replace("_", " ").title()))
        header = ruby_render("markdown", {"text": spec["header"]}) if spec.get("header") else ""
        value = html.escape(str(spec.get("value", "")))
        if widget == "select":
            options = "".join(f"<option>{html.escape(str(o[0] if isinstance(o, list) else o))}</option>"
                              for o in spec.get("options", []))
            control = f'<select id="{name}" name="{name}">{options}</select>'
        else:
            kind = "number" if widget == "number_field" or name == "bc_num_hours" else "text"
            placeholder = html.escape(spec.get("placeholder", ""))
            control = f'<input id="{name}" name="{name}" type="{kind}" value="{value}" placeholder="{placeholder}">'
        help_html = ruby_render("markdown", {"text": spec["help"]}) if spec.get("help") else ""
        parts.append(f'{header}<div class="form-group"><label for="{name}">{label}</label>{control}'
                     f'<div class="help">{help_html}</div></div>')
    page = FORM_PAGE.format(title=html.escape(form.get("title", "MLflow")), fields="".join(parts))
    return write_page(docroot, "/pun/sys/dashboard/batch_connect/sys/mlflow/session_contexts/new.html", page)
