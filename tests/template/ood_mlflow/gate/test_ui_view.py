"""The lines the gate adds to MLflow's index page so every session opens on the site's view."""

import json
import re

from ood_mlflow.gate.ui_view import STORAGE_KEY, with_view

PAGE = b'<!doctype html><html lang="en"><head><meta charset="utf-8"><script src="static-files/main.js"></script></head>'


def test_the_snippet_comes_before_mlflows_scripts():
    page = with_view(PAGE, "training")
    assert page.index(b"localStorage.setItem") < page.index(b"static-files/main.js")
    assert page.startswith(b'<!doctype html><html lang="en"><head><script>')


def test_the_stored_value_is_json_as_mlflows_hook_reads_it():
    script = with_view(PAGE, "training").decode()
    stored = {key: json.loads(json.loads(value)) for key, value in
              re.findall(r'localStorage\.setItem\("([^"]+)",("(?:[^"\\]|\\.)*")\)', script)}
    assert stored[STORAGE_KEY] == "machine_learning"
    # The first screen: no Assistant panel, no telemetry notice, no Start Demo in sight.
    assert stored["mlflow.assistant.panelOpen_v1"] is False
    assert stored["mlflow.telemetry.info.alert.dismissed_v1"] is True
    assert stored["mlflow.home.getting-started.collapsed_v1"] is True
