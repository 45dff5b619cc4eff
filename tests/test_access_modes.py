"""The Store access modes are declared once, in ood_mlflow.stores.access.ACCESS_MODES, and every place that
offers them offers exactly those, in that order, with the first as the default: the form (form.yml.erb,
rendered with Ruby's ERB as the dashboard does), bin/launch-local's help and its portal's --access."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from devportal.local_portal import make_parser
from devportal.ood import render_form
from ood_mlflow.errors import LaunchError
from ood_mlflow.settings import Settings
from ood_mlflow.stores.access import ACCESS_MODES, postgres_action
from ood_mlflow.stores.kinds import POSTGRESQL
from ood_mlflow.stores.schema import SAME

LAUNCHER = Path(__file__).resolve().parents[1] / "bin" / "launch-local"
VALUES = [mode.value for mode in ACCESS_MODES]
HIDES_CLOSING = {"data-hide-mlflow-close-slurm-runs": True}


def test_the_form_offers_the_modes_with_their_labels(site_config):
    options = render_form(site_config("3"))["attributes"]["mlflow_store_access"]["options"]
    assert [option[:2] for option in options] == [[mode.label, mode.value] for mode in ACCESS_MODES]
    # The box to close runs whose Slurm job ended is hidden for every mode that may not close them.
    hidden = {option[1]: option[2:] == [HIDES_CLOSING] for option in options}
    assert hidden == {mode.value: not mode.closes_slurm_runs for mode in ACCESS_MODES}


def test_the_launchers_help_offers_the_modes():
    shown = subprocess.run(["bash", str(LAUNCHER), "--help"], capture_output=True, text=True, timeout=30).stdout
    line = next(line for line in shown.splitlines() if line.lstrip().startswith("--access"))
    listed, default = re.search(r'"Store access": (.+) \(default (\w+)\)', line).groups()
    assert re.split(r", | or ", listed) == VALUES
    assert default == VALUES[0]


def test_the_local_portal_takes_the_modes():
    access = next(action for action in make_parser()._actions if "--access" in action.option_strings)
    assert list(access.choices) == VALUES
    assert access.default == VALUES[0]


def test_the_job_knows_the_modes_and_defaults_to_the_first():
    for value in VALUES:
        assert Settings.from_dict({"tracking_uri": "/s/m.db", "store_access": value}).store_access == value
    assert Settings.from_dict({"tracking_uri": "/s/m.db"}).store_access == VALUES[0]


@pytest.mark.parametrize("mode", ACCESS_MODES, ids=VALUES)
def test_a_postgresql_store_takes_the_modes_for_its_kind(mode):
    def action():
        return postgres_action(mode.value, True, SAME, "postgresql://h:5432/d", {"head"}, "3.17.2", {"head"})
    if POSTGRESQL in mode.kinds:
        assert action()
    else:
        with pytest.raises(LaunchError, match="applies to directory stores"):
            action()
