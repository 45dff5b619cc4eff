"""Where a session keeps its node-local files, and the room check before a copy (real file systems)."""

import tempfile

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.server import node_local


def test_local_scratch_is_used_where_the_site_sets_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_SCRATCH", str(tmp_path))
    assert node_local.folder() == str(tmp_path)
    made = node_local.make_folder("ood-mlflow-")
    assert made.startswith(str(tmp_path) + "/ood-mlflow-")
    monkeypatch.setenv("LOCAL_SCRATCH", str(tmp_path / "missing"))
    assert node_local.folder() == tempfile.gettempdir()


def test_a_copy_that_does_not_fit_names_the_size_and_the_sites_way(tmp_path):
    node_local.check_room(1, "a copy", "", str(tmp_path))
    with pytest.raises(LaunchError) as refused:
        node_local.check_room(2 ** 60, "a read-only copy of the store", "add NVMe: --gres=nvme:<GB>", str(tmp_path))
    line = refused.value.line
    assert line.startswith("ERROR: There is not enough node-local space for a read-only copy of the store")
    assert f"in {tmp_path}" in line and "MB free" in line and "--gres=nvme:<GB>" in line
