"""The kernel layer on its own: the rules a Plan gives (pure), and Landlock enforcing them in a child process.

The child runs `python3` with the app's package, confines itself with landlock.restrict as serve does (or is
started confined, as MLflow's tools are: confined_tool), and tries what MLflow could be made to do; it needs no
root, no MLflow and no session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ood_mlflow import serve
from ood_mlflow.confinement import landlock
from ood_mlflow.confinement.rules import READ, REQUIRED, WRITE, Environment, for_server, for_tool, status_line
from ood_mlflow.errors import LaunchError
from ood_mlflow.plan import Plan
from ood_mlflow.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[4] / "template"
needs_landlock = pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")
ENV = Environment(prefixes=("/opt/mlflow-env",), import_path=("/opt/mlflow-env/lib/python3/site-packages",))


def plan(**fields) -> Plan:
    values = dict(mlflow_version="3.17.2", store_kind="directory", store_path="/scratch/p/mlruns",
                  tracking_uri="/scratch/p/mlruns", backend_uri="/scratch/p/mlruns",
                  artifact_root="/scratch/p/mlruns", settings=Settings(artifact_roots=("/projappl",)))
    values.update(fields)
    return Plan(**values)


def levels(confinement) -> dict:
    return {path: level for path, level in confinement.rules}


def test_a_read_write_session_writes_only_the_store_its_roots_and_its_own_folders():
    rules = levels(for_server(plan(scratch=("/tmp/ood-mlflow-registry-x",)), ENV, "/home/u/session", ("/tmp/srv",)))
    assert set(rules) >= {"/usr", "/etc", "/opt/mlflow-env", "/home/u/session"}
    writable = {path for path, level in rules.items() if level == WRITE and not path.startswith("/dev")}
    assert writable == {"/scratch/p/mlruns", "/projappl", "/tmp/srv", "/tmp/ood-mlflow-registry-x"}
    assert rules["/home/u/session"] == READ
    assert not [path for path in rules if path in ("/", "/home", "/home/u", "/tmp", "/scratch")]


def test_an_sqlite_store_writes_its_folder_and_a_read_only_session_writes_no_store():
    rules = levels(for_server(plan(store_kind="sqlite", store_path="/scratch/p/db/mlruns.db",
                                   artifact_root="/scratch/p/db/mlartifacts", settings=Settings()),
                              ENV, "/s", ("/tmp/srv",)))
    assert rules["/scratch/p/db"] == WRITE
    read_only = levels(for_server(plan(read_only=True), ENV, "/s", ("/tmp/srv",)))
    assert read_only["/scratch/p/mlruns"] == READ and read_only["/projappl"] == READ
    assert read_only["/tmp/srv"] == WRITE


def test_a_postgresql_store_has_no_tree_and_reads_the_password_file():
    confinement = for_server(plan(store_kind="postgresql", store_path="postgresql://u@h/db",
                                  artifact_root="/home/u/mlartifacts", settings=Settings()),
                             ENV, "/s", ("/tmp/srv",), reads=("/home/u/.pgpass",))
    rules = levels(confinement)
    assert rules["/home/u/.pgpass"] == READ and "postgresql://u@h/db" not in rules
    assert "/home/u/mlartifacts" in confinement.writable()


def test_a_tool_writes_only_its_work_folder():
    rules = levels(for_tool(ENV, "/s", ("/scratch/p/mlruns",), "/scratch/p/.ood-mlflow-work-x"))
    assert rules["/scratch/p/mlruns"] == READ
    assert [p for p, level in rules.items() if level == WRITE and not p.startswith("/dev")] == [
        "/scratch/p/.ood-mlflow-work-x"]


def test_the_status_line_names_the_protection():
    assert status_line(7) == "Files: confined to the store by the kernel (Landlock ABI 7)"
    assert status_line(0, "the kernel has no Landlock") == (
        "Files: not confined by the kernel on this node (the kernel has no Landlock): the gate's checks only")


def test_without_landlock_a_site_that_requires_it_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    monkeypatch.setattr(serve, "write_plan", lambda p: None)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    here = plan(artifact_root=str(tmp_path / "mlartifacts"))
    with pytest.raises(LaunchError) as refused:
        serve.confine(replace(here, settings=Settings(confinement=REQUIRED)), tmp_path)
    assert "cannot confine the MLflow server" in refused.value.line and "confinement: auto" in refused.value.line
    assert serve.confine(here, tmp_path) == status_line(0, "the kernel has no Landlock")


CHILD = """
import json, os, sys
from ood_mlflow.confinement import landlock
from ood_mlflow.confinement.rules import Environment, Confinement, base_rules, WRITE, READ
store, outside, session = sys.argv[1:4]
rules = base_rules(Environment.of_this_process(), session) + [(store, WRITE)]
abi = landlock.restrict(Confinement(tuple(rules)))
seen = {"abi": abi}
def attempt(name, action):
    try:
        action()
        seen[name] = "done"
    except OSError as error:
        seen[name] = error.errno
attempt("write in the store", lambda: open(os.path.join(store, "new.txt"), "w").write("x"))
attempt("read through a link out", lambda: open(os.path.join(store, "link-out")).read())
attempt("read outside", lambda: open(os.path.join(outside, "key")).read())
attempt("make a folder outside", lambda: os.makedirs(os.path.join(outside, ".bashrc.d", "x")))
attempt("remove outside", lambda: os.unlink(os.path.join(outside, "key")))
attempt("write outside via ..", lambda: open(os.path.join(store, "..", "outside", "planted"), "w").write("x"))
import subprocess
child = subprocess.run(["cat", os.path.join(outside, "key")], capture_output=True, text=True)
seen["a child reads outside"] = child.stdout or child.stderr
print(json.dumps(seen))
"""


@needs_landlock
def test_landlock_keeps_a_process_and_its_children_inside_the_store(tmp_path):
    store, outside = tmp_path / "store", tmp_path / "outside"
    store.mkdir()
    outside.mkdir()
    (outside / "key").write_text("secret")
    (store / "link-out").symlink_to(outside / "key")
    done = subprocess.run([sys.executable, "-c", CHILD, str(store), str(outside), str(TEMPLATE)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(TEMPLATE)), timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen.pop("abi") >= 1
    assert seen.pop("write in the store") == "done"
    assert "Permission denied" in seen.pop("a child reads outside")
    assert seen == {name: 13 for name in seen}, seen  # EACCES for every other attempt
    assert (outside / "key").read_text() == "secret" and not (outside / ".bashrc.d").exists()
    assert not (outside / "planted").exists()


TOOL = """
import json, os, sys
seen = {}
for name, action in (("read the store", lambda: open(sys.argv[1]).read()),
                     ("read outside", lambda: open(sys.argv[2]).read()),
                     ("write its folder", lambda: open("made-here", "w").write("x")),
                     ("write the store's folder", lambda: open(sys.argv[1] + ".new", "w").write("x"))):
    try:
        action()
        seen[name] = "done"
    except OSError as error:
        seen[name] = error.errno
seen["cwd"], seen["tmpdir"] = os.getcwd(), os.environ["TMPDIR"]
print(json.dumps(seen))
"""


def run_tool(tmp_path):
    from ood_mlflow.confinement import confined_tool

    store, outside, work = tmp_path / "store", tmp_path / "outside", tmp_path / "work"
    for folder in (store, outside, work):
        folder.mkdir()
    (store / "meta.yaml").write_text("name: exp\n")
    (outside / "key").write_text("secret")
    tool = confined_tool.popen([sys.executable, "-c", TOOL, str(store / "meta.yaml"), str(outside / "key")],
                               "a tool", (str(store),), str(work), stdout=subprocess.PIPE, text=True)
    return json.loads(tool.communicate(timeout=60)[0]), work


@needs_landlock
def test_a_tool_reads_what_it_is_given_and_writes_only_its_work_folder(tmp_path):
    seen, work = run_tool(tmp_path)
    assert (seen.pop("cwd"), seen.pop("tmpdir")) == (str(work), str(work))
    assert seen == {"read the store": "done", "read outside": 13, "write its folder": "done",
                    "write the store's folder": 13}


def test_without_landlock_a_tool_runs_as_before(monkeypatch, tmp_path):
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    seen, _ = run_tool(tmp_path)
    assert seen["read outside"] == "done" and seen["write the store's folder"] == "done"
