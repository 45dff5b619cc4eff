"""The documents a site administrator and a newcomer read: links that lead somewhere, paths that exist.

README.md is for the site administrator (under 250 lines, the user guide in its first screen); the rest is in
docs/. Moving a section or a module must not leave a link or a named path pointing at nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1]
DOCUMENTS = [APP / "README.md"] + sorted((APP / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Backticked repository paths (`template/ood_mlflow/gate/app.py`, `tests/test_launch.py::test_x`).
NAMED_PATH = re.compile(r"`((?:template|tests|bin|devportal|bench|docs|lib|\.ci)/[^`\s]*)`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(document: Path) -> set:
    return {slug(line.lstrip("#")) for line in document.read_text().splitlines() if line.startswith("#")}


def outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document):
    broken = []
    for target in LINK.findall(outside_code(document.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{document.name}: links to nothing: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(document):
    missing = []
    for named in NAMED_PATH.findall(document.read_text()):
        path = named.split("::")[0].rstrip(".,;:)")
        if any(c in path for c in "<*{…"):
            continue
        module = re.sub(r"\.\w+$", ".py", path)  # devportal/ood.stage: a function of devportal/ood.py
        if not (APP / path).exists() and not (APP / module).exists():
            missing.append(named)
    assert not missing, f"{document.name} names paths that do not exist: {missing}"


def test_the_readme_is_short_and_opens_with_the_user_guide():
    lines = (APP / "README.md").read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; the site administrator's README stays under 250"
    assert any("docs/user-guide.md" in line for line in lines[:30]), "the user guide is not linked in the first screen"
