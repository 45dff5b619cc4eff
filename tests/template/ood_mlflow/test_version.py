"""The app's version: ood_mlflow.__version__, which the VERSION file (what OOD's app list shows), the
staged plugin metadata and the CHANGELOG's newest release must agree with."""

from pathlib import Path

import ood_mlflow

TEMPLATE = Path(ood_mlflow.__file__).resolve().parents[1]


def test_the_plugin_metadata_carries_the_packages_version():
    found = sorted(p.name for p in TEMPLATE.glob("ood_mlflow-*.dist-info"))
    assert found == [f"ood_mlflow-{ood_mlflow.__version__}.dist-info"], found
    metadata = (TEMPLATE / found[0] / "METADATA").read_text()
    assert f"Version: {ood_mlflow.__version__}\n" in metadata


def test_the_version_file_and_the_changelog_name_the_same_release():
    top = TEMPLATE.parent
    assert (top / "VERSION").read_text().strip() == ood_mlflow.__version__
    releases = [line for line in (top / "CHANGELOG.md").read_text().splitlines()
                if line.startswith("## [") and line != "## [Unreleased]"]  # Keep a Changelog's pending section
    assert releases[0].startswith(f"## [{ood_mlflow.__version__}] - "), releases[:2]
