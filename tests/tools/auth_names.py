"""Print, as JSON, the names MLflow's own code (outside its basic-auth package) takes from mlflow.server.auth.

Run with an MLflow venv's python: `python tests/tools/auth_names.py`. Reads the installed MLflow's source
with ast: `from mlflow.server.auth import X` gives X, and `from mlflow.server import auth` gives every
`auth.X` in the same function. Uses inside functions that run only for `--app-name basic-auth`
(BASIC_AUTH_ONLY) are left out: a session never runs that app.
"""

import ast
import json
import os

import mlflow

BASIC_AUTH_ONLY = {"_bootstrap_basic_auth"}


def names_in(tree: ast.Module) -> set:
    """Names from mlflow.server.auth in each function (and at module level), basic-auth-only functions aside."""
    found = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name not in BASIC_AUTH_ONLY]
    top_level = ast.Module([n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.ClassDef))], [])
    for scope in functions + [top_level]:
        nodes = list(ast.walk(scope))
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module == "mlflow.server.auth":
                found |= {alias.name for alias in node.names}
            if isinstance(node, ast.ImportFrom) and node.module == "mlflow.server" and \
                    any(alias.name == "auth" for alias in node.names):
                found |= {n.attr for n in nodes if isinstance(n, ast.Attribute)
                          and isinstance(n.value, ast.Name) and n.value.id == "auth"}
    return found


def main():
    top = os.path.dirname(mlflow.__file__)
    auth = os.path.join(top, "server", "auth")
    found = set()
    for folder, _, files in os.walk(top):
        if folder == auth or folder.startswith(auth + os.sep):
            continue
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as fh:
                    source = fh.read()
                if "mlflow.server" in source and "auth" in source:
                    found |= names_in(ast.parse(source))
    print(json.dumps(sorted(found)))


main()
