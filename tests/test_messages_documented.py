"""Every ERROR and WARNING line the app can print is in the troubleshooting tables (docs/troubleshooting.md).

The messages are collected from the code (Python's LaunchError and warn() calls,
the job's shell ERB files, the site configuration's checks), not from a hand
list: for each, its longest fixed piece of text must appear in docs/troubleshooting.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[1]
PACKAGE = APP / "template" / "ood_mlflow"
MIN_PIECE = 12  # shorter fixed pieces ("The store ") say too little to find a row by


def pieces(node) -> list:
    """The fixed text pieces of a message expression (an f-string, a constant, "a" + f"b", "a" "b")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += value.value
            else:
                out.append(current)
                current = ""
        return out + [current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return pieces(node.left) + pieces(node.right)
    return []


def python_messages() -> list:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("LaunchError", "StoreUriError", "warn"):
                found.append((f"{path.name}:{node.lineno}", pieces(node.args[0])))
    return found


def text_messages() -> list:
    found = []
    for path in [APP / "template" / "before.sh.erb", APP / "lib" / "site_config.rb"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for message in re.findall(r'(?:"ERROR: |fail!\(")((?:[^"\\]|\\.)*)"', line):
                found.append((f"{path.name}:{number}", re.split(r'#\{[^}]*\}|\\"\$\{[^}]*\}\\"|\$\{[^}]*\}', message)))
    return found


def normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", "").replace("\\'", "'").replace('\\"', '"')).strip(" .(:'\"").lower()


def test_every_error_and_warning_is_in_the_troubleshooting_tables():
    tables = normal((APP / "docs" / "troubleshooting.md").read_text())
    missing = []
    for where, parts in python_messages() + text_messages():
        longest = max((normal(p) for p in parts), key=len, default="")
        if len(longest) >= MIN_PIECE and longest not in tables:
            missing.append(f"{where}: {longest!r}")
    assert not missing, "messages not in docs/troubleshooting.md:\n" + "\n".join(missing)


def test_the_collector_finds_the_messages():
    found = python_messages() + text_messages()
    assert len(found) > 40
    assert any("does not exist (the nearest existing directory is" in " ".join(p) for _, p in found)
