"""One road for each setting: a site.yml key (nested keys joined with "_") or a form attribute (mlflow_<name>;
hours is OOD's bc_num_hours) is the key in settings.json, rendered by real Ruby ERB, and the field of
ood_mlflow.settings.Settings, and its value arrives unchanged, through the Plan too. Nothing here is renamed
by hand: the checks iterate the fields."""

from __future__ import annotations

import dataclasses
import json

import yaml

from devportal.ood import APP_ROOT, stage
from ood_mlflow.plan import Plan
from ood_mlflow.settings import Settings

FORM_ATTRIBUTES = {"tracking_uri": "mlflow_tracking_uri", "environment": "mlflow_environment",
                   "store_access": "mlflow_store_access", "close_slurm_runs": "mlflow_close_slurm_runs",
                   "hours": "bc_num_hours"}
FIELDS = [f.name for f in dataclasses.fields(Settings)]
SITE_FIELDS = [name for name in FIELDS if name not in FORM_ATTRIBUTES]

# A value unlike the default for every site setting, by its flat name.
SITE_VALUES = {"proxy": "node", "start_timeout": 42, "trusted_proxies": ["10.1.2.0/24"],
               "artifact_roots": ["/scratch/project_2001234"], "default_view": "genai",
               "examples_store": "/scratch/project_2001234/runs", "postgresql_allowed": False,
               "confinement": "required", "node_local_hint": "--gres=nvme:<GB>", "slurm_runs_enabled": False}
FORM_VALUES = {"tracking_uri": "/scratch/project_2001234/mlruns.db", "store_access": "read_only",
               "close_slurm_runs": "1", "hours": "3"}


def flat(mapping: dict) -> dict:
    return {f"{key}_{inner}" if isinstance(value, dict) else key: v
            for key, value in mapping.items()
            for inner, v in (value.items() if isinstance(value, dict) else [(None, value)])}


def nested(values: dict, example: dict) -> dict:
    """Flat names back to site.yml's shape, following site.yml.example."""
    config = {}
    for key, value in example.items():
        if isinstance(value, dict):
            inner = {k: values[f"{key}_{k}"] for k in value if f"{key}_{k}" in values}
            if inner:
                config[key] = dict(value, **inner)
        elif key in values:
            config[key] = values[key]
    return config


def plain(value):
    return list(value) if isinstance(value, tuple) else value


def test_every_site_setting_of_the_job_is_a_site_key_by_the_same_name():
    example = flat(yaml.safe_load((APP_ROOT / "site.yml.example").read_text()))
    assert sorted(set(SITE_FIELDS) - set(example)) == [], "Settings fields that are no site key"
    assert sorted(SITE_VALUES) == sorted(SITE_FIELDS), "give each site setting a value below"
    for name in SITE_FIELDS:
        assert plain(getattr(Settings(), name)) == example[name], f"{name}: Settings' default is not site.yml's"


def test_each_value_reaches_the_job_and_the_plan_unchanged(tmp_path, site_config):
    example = yaml.safe_load((APP_ROOT / "site.yml.example").read_text())
    env = site_config("3", **nested(SITE_VALUES, example))
    values = {FORM_ATTRIBUTES[name]: value for name, value in FORM_VALUES.items()}
    session = stage(values, env=env, dataroot=tmp_path)
    rendered = json.loads((session.staged_root / "settings.json").read_text())
    assert sorted(rendered) == sorted(FIELDS)

    settings = Settings.from_dict(rendered)
    for name, value in SITE_VALUES.items():
        assert plain(getattr(settings, name)) == value, name
    assert settings.environment == session.user_context["mlflow_environment"] != ""
    assert (settings.tracking_uri, settings.store_access) == (FORM_VALUES["tracking_uri"], "read_only")
    assert settings.hours == 3
    # slurm_runs_enabled: false takes the option off the form, which then sends "0" whatever was asked.
    assert settings.close_slurm_runs is False
    asked = stage({"mlflow_tracking_uri": "/x", "mlflow_close_slurm_runs": "1"}, env=site_config("3"),
                  dataroot=tmp_path / "asked")
    assert Settings.from_dict(json.loads((asked.staged_root / "settings.json").read_text())).close_slurm_runs

    plan = Plan("3.17.2", "sqlite", "/s/m.db", "sqlite:////s/m.db", "sqlite:////s/m.db", "/s", settings=settings)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))).settings == settings
