"""A conversion refuses a directory store holding a symlink that leads out of it, before anything reads it.

Stores are folders laid out here as MLflow's FileStore lays them out; no MLflow is needed."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.stores.links import outward_link, refuse_outward_links, unread_artifacts

RUN = ("1", "0123abcd")


@pytest.fixture
def store(tmp_path) -> Path:
    """Experiment 1 with one run (params, metrics, artifacts), a registered model; a secret beside the store."""
    store = tmp_path / "mlruns"
    run = store.joinpath(*RUN)
    for sub in ("params", "metrics", "artifacts"):
        (run / sub).mkdir(parents=True)
    (store / "1" / "meta.yaml").write_text("name: exp\n")
    (run / "meta.yaml").write_text(f"run_uuid: {RUN[1]}\n")
    (run / "params" / "lr").write_text("0.1")
    (run / "artifacts" / "notes.txt").write_text("notes")
    (store / "models" / "demo" / "tags").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "id_ed25519").write_text("the owner's key")
    return store


def secret(store: Path) -> Path:
    return store.parent / "home" / "id_ed25519"


def test_a_param_file_linked_to_the_owners_key_is_refused_naming_link_target_and_maker(store):
    link = store.joinpath(*RUN, "params", "lr")
    link.unlink()
    link.symlink_to(secret(store))
    assert outward_link(str(store)) == (str(link), str(secret(store)))
    with pytest.raises(LaunchError) as refused:
        refuse_outward_links(str(store))
    line = refused.value.line
    assert line.startswith("ERROR: ") and str(link) in line and str(secret(store)) in line
    assert f"made by user {pwd.getpwuid(os.getuid()).pw_name}" in line and "Remove the link" in line


@pytest.mark.parametrize("where", [("models", "demo", "tags", "owner"),  # the registry: read, never counted
                                   ("1", "0123abcd", "metrics", "deep", "loss"),
                                   ("1", "artifacts", "params", "x")])  # a folder named artifacts is a run there
def test_links_out_anywhere_the_tool_reads_are_found(store, where):
    link = store.joinpath(*where)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret(store))
    assert outward_link(str(store)) == (str(link), str(secret(store)))


def test_a_dangling_link_out_is_refused_too(store):
    link = store / "1" / "tags"
    link.symlink_to(store.parent / "home" / ".bashrc.d")  # not there yet: a write through it would make it
    assert outward_link(str(store))[0] == str(link)


def test_links_that_stay_inside_the_store_are_allowed(store):
    store.joinpath(*RUN, "params", "alias").symlink_to("lr")
    (store / "2").symlink_to(store / "1")
    (store / "self").symlink_to(".")  # a loop ends
    assert outward_link(str(store)) is None


def test_the_artifacts_the_tool_never_reads_are_not_looked_at(store):
    store.joinpath(*RUN, "artifacts", "checkpoint").symlink_to(secret(store))
    assert outward_link(str(store)) is None


def test_a_link_into_artifacts_makes_them_read_in_full(store):
    # The registry's models/ reached through a link to a run: the tool reads the run's artifacts as a model.
    store.joinpath(*RUN, "artifacts", "owner").symlink_to(secret(store))
    (store / "models" / "linked").symlink_to(store.joinpath(*RUN))
    assert outward_link(str(store))[0] == str(store.joinpath(*RUN, "artifacts", "owner"))


def test_which_artifacts_folders_the_tool_never_reads():
    assert unread_artifacts(("1", "0123abcd", "artifacts"))
    assert unread_artifacts((".trash", "7", "0123abcd", "artifacts"))
    assert unread_artifacts(("1", "models", "m-1", "artifacts"))
    assert unread_artifacts(("1", "traces", "tr-1", "artifacts"))
    assert not unread_artifacts(("1", "artifacts"))  # a run named artifacts
    assert not unread_artifacts(("1", "models", "artifacts"))  # a logged model named artifacts
    assert not unread_artifacts(("1", "0123abcd", "params", "artifacts"))  # a param named artifacts
