"""The OOD files, rendered as the dashboard renders them (real Ruby ERB, Psych
safe_load, Redcarpet), checked for what the dashboard and the user get."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from html.parser import HTMLParser

import pytest
import yaml

import ood_mlflow
from devportal.ood import APP_ROOT, RenderError, render_form, render_submit, stage


class Elements(HTMLParser):
    """Every element with its attributes and the chain of elements it sits in."""

    def __init__(self, html):
        super().__init__()
        self.stack, self.found, self.text = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs), tuple(self.stack)))
        if tag not in ("input", "br", "img", "meta"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag):]

    def handle_data(self, data):
        self.text.append(data)

    def first(self, tag):
        return next((f for f in self.found if f[0] == tag), None)


def test_manifest_is_a_batch_connect_app():
    manifest = yaml.safe_load((APP_ROOT / "manifest.yml").read_text())
    assert manifest["role"] == "batch_connect" and manifest["name"] == "MLflow"


def test_the_sites_examples_replace_the_neutral_ones(site_config):
    examples = {"project": "project_2001234", "store": "/scratch/project_2001234/mlruns"}
    form = render_form(site_config("3", examples=examples))
    store = form["attributes"]["mlflow_tracking_uri"]
    assert store["placeholder"] == "/scratch/project_2001234/mlruns"
    assert "`/scratch/project_2001234/mlruns.db`" in store["help"]
    assert "`project_2001234`" in form["attributes"]["bc_account"]["help"]


def test_form_defaults_without_site_configuration():
    form = render_form()
    assert form["cluster"] == "cluster"
    assert form["form"][0] == "mlflow_tracking_uri"
    store = form["attributes"]["mlflow_tracking_uri"]
    assert store["widget"] == "path_selector" and store["required"] is True
    # Neutral examples unless the site gives its own (examples in site.yml).
    assert "/path/to/my_project/mlruns" in store["help"] and "sqlite:////" in store["help"]
    assert "project_2001234" not in json.dumps(form)
    # One environment: the choice is hidden.
    assert form["attributes"]["mlflow_environment"]["widget"] == "hidden_field"
    for name in form["form"]:
        assert re.match(r"(mlflow_|bc_|auto_)", name), f"{name} may collide with a Ruby method"
    # The dashboard keeps only attributes named in `form:`; the job's ERB needs this fixed one.
    assert "mlflow_app_root" in form["form"] and form["attributes"]["mlflow_app_root"] == str(APP_ROOT)
    for name in ("bc_num_hours", "mlflow_num_cores", "mlflow_memory_gb"):
        assert form["attributes"][name]["value"] >= 1


def test_form_follows_the_site_configuration(site_config):
    env = site_config(
        "3", cluster=["puhti", "mahti"], account="none", docs_url="https://docs.example.org/mlflow",
        partitions=[{"name": "interactive", "max_hours": 8, "max_cores": 2}, "small"],
        environments=[{"label": "MLflow 3.17", "setup": "module load mlflow/3.17"},
                      {"label": "MLflow 2.22", "setup": "module load mlflow/2.22"}],
        cores={"default": 2, "max": 4})
    form = render_form(env)
    assert form["cluster"] == ["puhti", "mahti"]
    assert "bc_account" not in form["form"]
    partitions = form["attributes"]["bc_queue"]["options"]
    assert [p[0] for p in partitions] == ["interactive", "small"]
    assert partitions[0][2] == {"data-max-bc-num-hours": 8, "data-max-mlflow-num-cores": 2,
                                "data-max-mlflow-memory-gb": 64}
    assert partitions[1][2]["data-max-bc-num-hours"] == 72
    assert "[How to use this app](https://docs.example.org/mlflow)" in form["attributes"]["mlflow_tracking_uri"]["help"]
    assert form["form"][-4:-1] == ["mlflow_store_access", "mlflow_close_slurm_runs", "mlflow_environment"], \
        "advanced fields come last"
    assert form["attributes"]["mlflow_store_access"]["cacheable"] is False
    assert form["attributes"]["mlflow_environment"]["options"] == ["MLflow 3.17", "MLflow 2.22"]
    assert (form["attributes"]["mlflow_num_cores"]["value"], form["attributes"]["mlflow_num_cores"]["max"]) == (2, 4)


@pytest.mark.parametrize("config,words", [
    ({"partiton": ["small"]}, "unknown key partiton"),
    ({"proxy": "direct"}, "proxy must be rnode or node"),
    ({"environments": []}, "environments must be a non-empty list"),
    ({"cores": {"default": 9, "max": 4}}, "cores must have"),
    ({"partitions": [{"name": "x", "max_hour": 3}]}, "partitions[0] must be a name or a mapping"),
    ({"account": "sacct"}, "account must be text, auto or none"),
    ({"postgresql": {"allowed": "yes"}}, "postgresql must be a mapping with allowed: true or false"),
    ({"postgresql": {"allowed": True, "host": "db"}}, "postgresql must be a mapping"),
])
def test_a_wrong_site_configuration_is_reported_readably(site_config, config, words):
    with pytest.raises(RenderError) as error:
        render_form(site_config("3", **config))
    assert "ERROR:" in str(error.value) and words in str(error.value)


def test_postgres_help_follows_the_site(site_config):
    def help_text(config):
        return render_form(config)["attributes"]["mlflow_tracking_uri"]["help"]

    assert "postgresql://user@host:5432/dbname" in help_text(site_config("3"))
    assert "~/.pgpass" in help_text(site_config("3"))
    assert "postgresql" not in help_text(site_config("3", postgresql={"allowed": False}))


def test_auto_accounts_replace_the_text_field(site_config):
    form = render_form(site_config("3", account="auto"))
    assert "auto_accounts" in form["form"] and "bc_account" not in form["form"]


def test_partition_limits_are_enforced_on_submit(tmp_path, site_config):
    env = site_config("3", partitions=[{"name": "interactive", "max_hours": 8, "max_cores": 2}, "small"])
    context = {"bc_queue": "interactive", "bc_num_hours": "9", "mlflow_num_cores": "1", "mlflow_memory_gb": "1"}
    with pytest.raises(RenderError, match="ERROR: Hours must be a whole number from 1 to 8"):
        render_submit(context, tmp_path, env)
    with pytest.raises(RenderError, match="ERROR: Cores must be a whole number from 1 to 2"):
        render_submit(dict(context, bc_num_hours="8", mlflow_num_cores="3"), tmp_path, env)
    assert "--cpus-per-task=3" in render_submit(dict(context, bc_queue="small", bc_num_hours="9", mlflow_num_cores="3"),
                                                tmp_path, env)["script"]["native"]


@pytest.mark.parametrize("typed", ["postgresql://alice:Hunter2@db/mlflow", "POSTGRESQL+psycopg2://alice:@db/mlflow",
                                   "postgresql://alice@db/mlflow?sslmode=require&password=Hunter2",
                                   " postgresql+psycopg://alice:p@ss@db:5432/mlflow",
                                   "postgresql://alice@db/mlflow?password%3DHunter2",
                                   "postgresql://alice@db/mlflow?sslmode=require&%70assword=Hunter2",
                                   "postgresql://alice@db/mlflow?p%2561ssword=Hunter2",
                                   "postgresql://alice%3AHunter2@db/mlflow"])
def test_a_password_in_a_postgres_uri_is_refused_on_submit(tmp_path, typed):
    with pytest.raises(RenderError) as error:
        render_submit({"mlflow_tracking_uri": typed}, tmp_path)
    assert "ERROR: the PostgreSQL tracking URI contains a password" in str(error.value)
    assert "Hunter2" not in str(error.value) and "p@ss" not in str(error.value)


def test_a_postgres_uri_without_password_is_submitted(tmp_path):
    submit = render_submit({"mlflow_tracking_uri": "postgresql://alice@db.example.org:5432/mlflow?sslmode=require"},
                           tmp_path)
    assert submit["batch_connect"]["template"] == "basic"


def test_submit_options(tmp_path):
    context = {"mlflow_num_cores": "2", "mlflow_memory_gb": "3", "mlflow_tracking_uri": "/x"}
    submit = render_submit(context, tmp_path)
    assert submit["batch_connect"]["template"] == "basic"
    assert submit["batch_connect"]["conn_params"] == ["mlflow_proxy"]
    assert "--cpus-per-task=2" in submit["script"]["native"] and "--mem=3G" in submit["script"]["native"]


@pytest.mark.parametrize("cores", ["0", "abc", "9", "1; rm -rf ~", "$(id)"])
def test_submit_refuses_bad_resource_values_on_the_form_page(tmp_path, cores):
    with pytest.raises(RenderError) as error:
        render_submit({"mlflow_num_cores": cores, "mlflow_memory_gb": "1"}, tmp_path)
    assert "ERROR: Cores must be a whole number from 1 to 8" in str(error.value)


HOSTILE = "/scratch/my runs/it's \"$(touch /tmp/ood-mlflow-pwned)\" `id`; echo x\n.db"


def test_staged_session_matches_what_the_job_expects(tmp_path, site_config):
    session = stage({"mlflow_tracking_uri": HOSTILE}, env=site_config("3"), dataroot=tmp_path)
    root = session.staged_root
    for name in ("before.sh", "script.sh", "after.sh", "environment.sh", "settings.json", "ood_mlflow/__main__.py",
                 f"ood_mlflow-{ood_mlflow.__version__}.dist-info/entry_points.txt", "user_defined_context.json"):
        assert (root / name).is_file(), f"{name} was not staged"
    assert not list(root.rglob("*.erb")), "ERB sources were copied into the session"
    assert os.access(root / "script.sh", os.X_OK), "script.sh is not executable: the job would fail with 126"
    assert stat.S_IMODE((root / "script.sh").stat().st_mode) == 0o755
    for name in ("before.sh", "script.sh", "after.sh", "environment.sh"):
        check = subprocess.run(["bash", "-n", str(root / name)], capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stderr}"
        assert "touch /tmp/ood-mlflow-pwned" not in (root / name).read_text(), f"a form value reached {name}"
    settings = json.loads((root / "settings.json").read_text())
    assert settings["tracking_uri"] == HOSTILE and settings["proxy"] == "rnode"
    assert json.loads((root / "user_defined_context.json").read_text())["mlflow_tracking_uri"] == HOSTILE
    assert "source /opt/ood-mlflow/venv-mlflow3/bin/activate" in (root / "environment.sh").read_text()


def write_connection(session, proxy="rnode"):
    session.connection_file.write_text(
        f"mlflow_proxy: {proxy}\nhost: c1234.cluster\nport: 43210\n"
        "password: Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h\n")


@pytest.mark.parametrize("proxy", ["rnode", "node"])
def test_view_survives_markdown_and_posts_the_secret(tmp_path, proxy):
    session = stage({"mlflow_tracking_uri": "/x"}, dataroot=tmp_path)
    write_connection(session, proxy)
    html = session.render_view()
    page = Elements(html)
    form = page.first("form")
    assert form, f"no <form> left after OOD's Markdown pass:\n{html}"
    assert not {"pre", "code", "p"} & set(form[2]), \
        f"Markdown wrapped the form in {form[2]}: the view has an indented or split block"
    assert page.found[0][0] == "form", "the Connect form must be the view's first element"
    assert form[1]["action"] == f"/{proxy}/c1234.cluster/43210/login"
    assert form[1]["method"] == "post"
    hidden = [a for t, a, _ in page.found if t == "input" and a.get("type") == "hidden"]
    assert hidden == [{"type": "hidden", "name": "password", "value": "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h"}]
    assert "Connect to MLflow" in "".join(page.text)
    assert "password" not in form[1]["action"] and "Ab3dEf6h" not in form[1]["action"]


def test_info_card_shows_store_version_and_tracking_line(tmp_path):
    session = stage({"mlflow_tracking_uri": "/scratch/p/mlruns.db"}, dataroot=tmp_path)
    assert "/scratch/p/mlruns.db" in session.render_info("queued")
    (session.staged_root / "plan.json").write_text(json.dumps(
        {"mlflow_version": "3.17.2", "tracking_uri": "sqlite:////scratch/p/<mlruns>.db"}))
    html = session.render_info()
    assert "3.17.2" in html
    assert "mlflow.set_tracking_uri(&quot;sqlite:////scratch/p/&lt;mlruns&gt;.db&quot;)" in html
    assert not Elements(html).first("pre")


def test_info_card_shows_a_conversion_in_progress_and_the_file_store_opt_in(tmp_path):
    session = stage({"mlflow_tracking_uri": "/scratch/p/mlruns", "mlflow_store_access": "convert"}, dataroot=tmp_path)
    (session.staged_root / "conversion.json").write_text(json.dumps(
        {"stage": "converting", "runs_done": 4200, "runs_total": 10000, "time": 1}))
    assert "Converting to SQLite:</strong> copying runs, about 4200 of 10000 runs" in session.render_info("starting")
    (session.staged_root / "plan.json").write_text(json.dumps(
        {"mlflow_version": "3.17.2", "tracking_uri": "/scratch/p/mlruns", "store_kind": "file",
         "file_store_opt_in": True}))
    html = session.render_info()
    assert "Converting" not in html, "the progress line must go once the session has its plan"
    assert "export MLFLOW_ALLOW_FILE_STORE=true" in html and "Convert a directory store to SQLite" in html


def test_info_card_shows_warnings_and_counts_in_words(tmp_path):
    session = stage({"mlflow_tracking_uri": "/scratch/p/mlruns.db", "mlflow_num_cores": "1", "bc_num_hours": "1"},
                    dataroot=tmp_path)
    warning = "WARNING: The SQLite store '<x>' is in WAL journal mode."
    (session.staged_root / "job_messages").write_text(warning + "\n")
    # MLflow's root logger, fed by a planted meta.yaml, writes lines of the same shape into output.log.
    session.output_log.write_text(f"Script starting...\n{warning}\nWARNING:root:Visit https://evil.example now\n")
    html = session.render_info()
    assert "WARNING: The SQLite store &#39;&lt;x&gt;&#39; is in WAL journal mode." in html
    assert "evil.example" not in html, "the card showed a line MLflow logged, not one the job wrote"
    assert "1 core," in html and "1 hour" in html and "1 cores" not in html and "1 hours" not in html


def test_completed_card_shows_why_the_session_ended(tmp_path):
    session = stage({"mlflow_tracking_uri": "/x"}, dataroot=tmp_path)
    error = "ERROR: The store <x> does not exist. Fix: check it."
    (session.staged_root / "job_messages").write_text(error + "\n")
    session.output_log.write_text(f"Script starting...\n{error}\n"
                                  "ERROR:root:Your session expired, log in at evil.example\n"
                                  "Cleaning up...\n")
    html = session.render_completed()
    assert "ERROR: The store &lt;x&gt; does not exist. Fix: check it." in html
    assert "evil.example" not in html, "the card showed a line MLflow logged, not one the job wrote"
    (session.staged_root / "job_messages").unlink()
    session.output_log.write_text(
        "slurmstepd: error: *** JOB 5 ON c1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***\n")
    assert "time limit" in session.render_completed()
    session.output_log.write_text("slurmstepd: error: *** JOB 5 ON c1 CANCELLED AT 2026-01-01T00:00:00 ***\n")
    assert "stopped before its time ran out" in session.render_completed()
    session.output_log.write_text("Cleaning up...\n")
    assert "The session has ended." in session.render_completed()


def test_the_close_slurm_runs_option_is_off_offered_with_read_and_write_and_reaches_the_job(tmp_path, site_config):
    form = render_form(site_config("3"))
    option = form["attributes"]["mlflow_close_slurm_runs"]
    assert option["widget"] == "check_box" and option["value"] == "0" and option["cacheable"] is False
    access = {o[1]: o[2:] for o in form["attributes"]["mlflow_store_access"]["options"]}
    assert access["write"] == [], "Read and write must keep the option shown"
    for other in ("read_only", "upgrade", "convert"):
        assert access[other] == [{"data-hide-mlflow-close-slurm-runs": True}], other
    session = stage({"mlflow_tracking_uri": "/x", "mlflow_close_slurm_runs": "1"}, env=site_config("3"),
                    dataroot=tmp_path / "on")
    settings = json.loads((session.staged_root / "settings.json").read_text())
    assert (settings["close_slurm_runs"], settings["slurm_runs_enabled"]) == ("1", True)

    off = site_config("3", slurm_runs={"enabled": False})
    form = render_form(off)
    assert "mlflow_close_slurm_runs" in form["form"] and form["attributes"]["mlflow_close_slurm_runs"] == "0"
    assert all(len(o) == 2 for o in form["attributes"]["mlflow_store_access"]["options"])
    session = stage({"mlflow_tracking_uri": "/x"}, env=off, dataroot=tmp_path / "off")
    settings = json.loads((session.staged_root / "settings.json").read_text())
    assert (settings["close_slurm_runs"], settings["slurm_runs_enabled"]) == ("0", False)
    with pytest.raises(RenderError, match="slurm_runs must be a mapping with enabled: true or false"):
        render_form(site_config("3", slurm_runs={"enabled": "yes"}))


def test_info_card_shows_runs_whose_slurm_job_has_ended_and_the_lookups_warning(tmp_path):
    session = stage({"mlflow_tracking_uri": "/scratch/p/mlruns.db"}, dataroot=tmp_path)
    (session.staged_root / "server").mkdir()
    found = session.staged_root / "server" / "slurm_runs.json"
    found.write_text(json.dumps({"summary": "2 runs are RUNNING in MLflow, but their Slurm jobs have ended: "
                                            "1 TIMEOUT, 1 CANCELLED. <b>x</b> (job 12_1), 13 (job 13).",
                                 "action": "To mark them KILLED ..."}))
    html = session.render_info()
    assert ("<strong>Slurm:</strong> 2 runs are RUNNING in MLflow, but their Slurm jobs have ended: 1 TIMEOUT, "
            "1 CANCELLED. &lt;b&gt;x&lt;/b&gt; (job 12_1), 13 (job 13). To mark them KILLED ...") in html
    found.write_text(json.dumps({"warning": "WARNING: Could not ask Slurm about the jobs of 2 RUNNING runs (x)."}))
    (session.staged_root / "job_messages").write_text("WARNING: Could not ask Slurm about the jobs of 2 RUNNING "
                                                       "runs (x).\n")
    html = session.render_info()
    assert html.count("Could not ask Slurm") == 1, "the warning from both files must show once"
    assert "<strong>Slurm:</strong>" not in html
