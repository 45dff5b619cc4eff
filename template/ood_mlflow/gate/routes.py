"""Which MLflow routes a session offers, and how (pure).

The gate sees a request's path; MLflow routes it with Flask (2.x and 3.x) and,
from 3.3, FastAPI. These rules name MLflow's routes as its route tables do
(`/ajax-api/2.0/mlflow/runs/get`, `<model_id>`, `{name:path}`), so a test can
walk both tables and check every route against them
(tests/template/ood_mlflow/gate/test_routes.py).

- REFUSED: route families a session never offers, whatever its access: MLflow's
  own artifact proxy (the session serves no proxied artifacts), presigned URLs,
  the assistant (it runs programs on the node), the AI gateway, webhooks, jobs
  and LLM invocations (they make the node call out with the owner's keys).
- artifact routes: served only after the gate has confined the path they
  reach (artifacts.py); any other route that names artifacts is refused.
- allowlists: a read-only session passes only the (method, route) pairs in
  read_only_routes, a read-write session only those in read_write_routes (the
  read-only ones and the writes MLflow's UI sends); `allowed` also names the
  route's variables (`<model_id>`...), whose values ids.py checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .read_only_routes import READ_ONLY_ROUTES
from .read_write_routes import READ_WRITE_ROUTES

_API = r"/(?:ajax-api|api)/(?:2\.0|3\.0)"
REFUSED = tuple(re.compile(p) for p in (
    _API + r"/mlflow-artifacts(?:/|$)",
    _API + r"/mlflow/artifacts/presigned-",
    _API + r"/mlflow/assistant(?:/|$)",
    r"/gateway(?:/|$)",
    _API + r"/mlflow/gateway(?:/|-proxy|$)",
    _API + r"/(?:mlflow/)?jobs(?:/|$)",
    _API + r"/mlflow/prompt-optimization(?:/|$)",
    _API + r"/mlflow/webhooks(?:/|$)",
    r".*/invoke$",
))

# MLflow 3.x's "Start Demo" (Getting Started on the home page): it writes MLflow's sample experiments, traces
# and prompts into the store, which may be a project's. Refused with its own explanation, whatever the access.
DEMO = re.compile(_API + r"/mlflow/demo(?:/|$)")

# The artifact routes the gate knows how to confine: (method, route, what the
# path belongs to, query parameters naming it, query parameter of the relative path).
# A run is named by run_id or else run_uuid, as MLflow's handlers read them.
RUN, MODEL_VERSION, LOGGED_MODEL, TRACE = "run", "model-version", "logged-model", "trace"


@dataclass(frozen=True)
class ArtifactRoute:
    method: str
    pattern: re.Pattern
    owner: str  # RUN, MODEL_VERSION, LOGGED_MODEL or TRACE
    ids: tuple  # query parameters that name the owner, first non-empty wins
    path_param: str  # the relative artifact path ("" for none)


ARTIFACT_ROUTES = (
    ArtifactRoute("GET", re.compile(r"/get-artifact"), RUN, ("run_id", "run_uuid"), "path"),
    ArtifactRoute("GET", re.compile(_API + r"/mlflow/artifacts/list"), RUN, ("run_id", "run_uuid"), "path"),
    ArtifactRoute("POST", re.compile(_API + r"/mlflow/upload-artifact"), RUN, ("run_uuid",), "path"),
    ArtifactRoute("GET", re.compile(r"/model-versions/get-artifact"), MODEL_VERSION, ("name", "version"), "path"),
    ArtifactRoute("GET", re.compile(_API + r"/mlflow/get-trace-artifact"), TRACE, ("request_id",), "path"),
    ArtifactRoute("GET", re.compile(_API + r"/mlflow/logged-models/(?P<id>[^/]+)/artifacts/files"), LOGGED_MODEL,
                  (), "artifact_file_path"),
    ArtifactRoute("GET", re.compile(_API + r"/mlflow/logged-models/(?P<id>[^/]+)/artifacts/directories"),
                  LOGGED_MODEL, (), "artifact_directory_path"),
)
# GETs the UI sends on every page that only read settings: the assistant's
# configuration (MLflow lets anyone read it), and the 2.x UI's list of gateway
# endpoints, which the gate answers itself as MLflow does with no gateway.
UI_READS = (re.compile(_API + r"/mlflow/assistant/(?:config|providers)"),)
GATEWAY_LIST = re.compile(_API + r"/mlflow/gateway-proxy")
EMPTY_GATEWAY = '{"endpoints": []}'
GRAPHQL = re.compile(r"/graphql")


def mlflow_route(path: str, prefix: str) -> str:
    """The route MLflow matches: the static prefix taken off, repeated slashes as one.

    MLflow 3.x serves some routes both with and without the prefix, so both
    forms are checked the same way."""
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):] or "/"
    return re.sub("/{2,}", "/", path)


def never_offered(route: str, method: str = "GET") -> bool:
    """A route of the families in REFUSED, which no session offers; the UI's reads of settings excepted."""
    if method in ("GET", "HEAD") and any(p.fullmatch(route) for p in UI_READS + (GATEWAY_LIST,)):
        return False
    return any(p.match(route) for p in REFUSED)


def empty_gateway(method: str, route: str) -> bool:
    return method in ("GET", "HEAD") and bool(GATEWAY_LIST.fullmatch(route))


def artifact_route(method: str, route: str):
    """(ArtifactRoute, match) for a confined artifact route, (None, None) for any other."""
    method = "GET" if method == "HEAD" else method
    for candidate in ARTIFACT_ROUTES:
        match = candidate.pattern.fullmatch(route)
        if match and method == candidate.method:
            return candidate, match
    return None, None


def names_artifacts(route: str) -> bool:
    return "artifact" in route.lower()


def read_only_allows(method: str, route: str) -> bool:
    return allowed(method, route, read_only=True) is not None


def allowed(method: str, route: str, read_only: bool):
    """The route's variables ({name: value}) if the session's allowlist has (method, route), else None."""
    method = "GET" if method == "HEAD" else method
    for listed, pattern in _patterns(read_only):
        match = pattern.fullmatch(route) if listed == method else None
        if match:
            return match.groupdict()
    return None


@lru_cache(maxsize=2)
def _patterns(read_only: bool) -> tuple:
    # Most specific first, as Flask matches: `traces/get` before `traces/<trace_id>`, whose variable
    # would otherwise be "get".
    listed = sorted(READ_ONLY_ROUTES if read_only else READ_WRITE_ROUTES, key=lambda pair: _generality(pair[1]))
    return tuple((method, route_pattern(route)) for method, route in listed)


def _generality(route: str) -> tuple:
    variables = _VARIABLE.findall(route)
    return len(variables), -len(_VARIABLE.sub("", route))


_VARIABLE = re.compile(r"<(?:(\w+):)?(\w+)>|\{(\w+)(?::(\w+))?\}")


def route_pattern(route: str) -> re.Pattern:
    """A regular expression for a Flask (`<x>`, `<path:x>`) or FastAPI (`{x}`, `{x:path}`) route, naming
    each variable."""
    out, position, names = [], 0, set()
    for variable in _VARIABLE.finditer(route):
        out.append(re.escape(route[position:variable.start()]))
        converter = variable.group(1) or variable.group(4)
        name = variable.group(2) or variable.group(3)
        value = ".+" if converter == "path" else "[^/]+"
        out.append(f"(?P<{name}>{value})" if name not in names else value)
        names.add(name)
        position = variable.end()
    out.append(re.escape(route[position:]))
    return re.compile("".join(out))
