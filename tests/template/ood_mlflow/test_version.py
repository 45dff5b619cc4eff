"""The app's version is written once, in ood_mlflow.__version__; the staged plugin metadata must agree."""

from pathlib import Path

import ood_mlflow

TEMPLATE = Path(ood_mlflow.__file__).resolve().parents[1]


def test_the_plugin_metadata_carries_the_packages_version():
    found = sorted(p.name for p in TEMPLATE.glob("ood_mlflow-*.dist-info"))
    assert found == [f"ood_mlflow-{ood_mlflow.__version__}.dist-info"], found
    metadata = (TEMPLATE / found[0] / "METADATA").read_text()
    assert f"Version: {ood_mlflow.__version__}\n" in metadata
