"""Keep MLflow's artifact routes inside the places a session may touch.

MLflow serves a run's (model's, trace's) artifacts from whatever location the
store records for it, and its artifact routes read and write there with the
owner's rights. A store is shared with a project, and a location can be planted
(a run row edited in a shared SQLite file, an experiment created with any
artifact_location), so the gate resolves the file a request would reach and
lets it pass only when its real path (symlinks and `..` followed) lies under an
allowed root: the store's own tree, the session's default artifact root and the
site's `artifact_roots`.

MLflow treats a location without a scheme, or with `file:`, as a local path;
every other scheme (s3:, mlflow-artifacts:, ...) would make the node reach
elsewhere, which a session does not do.

Locations a request sets are checked the same way before MLflow records them:
an experiment's `artifact_location` (or `artifactLocation`, as MLflow's parser
also reads it), and the trace tags that say where a trace's files are
(`mlflow.artifactLocation`, and `mlflow.trace.archiveLocation`, where 3.x
reads and removes archived spans), wherever a body sets them.

A relative artifact path reaches MLflow decoded once, by the web server, and
MLflow's validate_path_is_safe then decodes it again until it stops changing
(unquote, urlparse and urlunparse, in 2.22 and 3.17 alike), so `lnk%252Fid_rsa`
is `lnk/id_rsa` to MLflow; a path that such decoding would change is refused.
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse, urlunparse

from ..stores.kinds import kind_of
from . import request_json
from .routes import LOGGED_MODEL, MODEL_VERSION, RUN, TRACE

NOT_LOCAL = "not a path on this cluster"


def allowed_roots(store_kind: str, store_path: str, artifact_root: str, site_roots=()) -> tuple:
    """The real paths under which artifacts may be read or written."""
    tree = kind_of(store_kind).tree(store_path)  # "" for a database: only its artifact roots
    roots = [tree, artifact_root] + [str(r) for r in site_roots]
    return tuple(dict.fromkeys(os.path.realpath(r) for r in roots if r))


def local_path(location: str):
    """The file-system path MLflow would use for an artifact location, or None if it is not local.

    As MLflow's local_file_uri_to_path: urlparse for file: URIs, then url2pathname, which on
    POSIX percent-decodes plain paths too (`/store/%2E%2E` is `/store/..` to MLflow)."""
    parts = urlparse(location)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    if parts.scheme == "" and parts.netloc == "":
        return unquote(location)
    return None


def resolve(location: str, relative: str = ""):
    """The real path an artifact request reaches: the location joined with the relative path."""
    base = local_path(location)
    if base is None:
        return None
    # An absolute relative path replaces the base, as in MLflow's join: it is checked as given.
    return os.path.realpath(os.path.join(base, relative) if relative else base)


def inside(real_path: str, roots) -> bool:
    return any(os.path.commonpath([real_path, root]) == root for root in roots)


def outside_roots_refusal(location: str, relative: str, roots) -> str:
    """'' when the request stays inside `roots`, else the message the UI shows."""
    real = resolve(location, relative)
    if real is not None and inside(real, roots):
        return ""
    where = f"{location!r} ({NOT_LOCAL})" if real is None else repr(real)
    return (f"This MLflow session does not read or write artifacts at {where}: it serves only files under "
            f"{', '.join(roots)}. If your artifacts live elsewhere on the cluster, ask your site's administrators "
            f"to add that folder to artifact_roots in the MLflow app's site.yml.")


def experiment_location_refusal(body: bytes, roots) -> str:
    """'' unless an experiments/create body asks for an artifact_location outside `roots`."""
    try:
        data = request_json.parse(body)
    except ValueError:
        return ""  # the gate refuses a body it cannot parse before it asks this
    return location_refusal(data, roots)


def location_refusal(data, roots) -> str:
    """'' unless a parsed JSON body sets an artifact location, or a trace location tag, outside `roots`."""
    for location in set_locations(data):
        if not isinstance(location, str):
            return f"This request sets an artifact location that is not a path: {location!r}."
        message = outside_roots_refusal(location, "", roots) if location else ""
        if message:
            return message
    return ""


def set_locations(data) -> list:
    """Every location a body sets: top-level artifact_location/artifactLocation, and the values of the
    location tags anywhere in it, as {key, value} pairs or as a map."""
    found = [data[k] for k in LOCATION_FIELDS if isinstance(data, dict) and k in data]

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("key") in LOCATION_TAGS and "value" in node:
                found.append(node["value"])
            found.extend(node[k] for k in LOCATION_TAGS if k in node)
            for value in node.values():
                walk(value)
    walk(data)
    return found


def changed_by_mlflow_decoding(path: str) -> bool:
    """True if MLflow's validate_path_is_safe would read `path` as another path (see the module's notes)."""
    return (unquote(path) != path or urlunparse(urlparse(path)) != path
            or any(ord(c) < 32 or ord(c) == 127 for c in path))


def graphql_lists_artifacts(body: bytes, query_string: str) -> bool:
    """True if a GraphQL request uses mlflowListArtifacts, which lists files without the gate's check.

    GraphQL names cannot be escaped, but JSON strings can, so the body is read
    both raw and decoded."""
    texts = [body.decode("utf-8", "replace"), unquote(query_string.replace("+", " "))]
    try:
        texts.append(json.dumps(json.loads(body), ensure_ascii=False))
    except ValueError:
        pass
    return any("listartifacts" in text.lower() for text in texts)


# Where MLflow's REST API tells an artifact owner's location: (API path, JSON keys to the location).
# The gate asks MLflow itself, so it checks the location MLflow will use.
def location_queries(owner: str, ids: dict, route_id: str, prefix: str) -> list:
    api = prefix + "/ajax-api"
    if owner == RUN:
        return [(f"{api}/2.0/mlflow/runs/get?" + urlencode({"run_id": ids.get("run_id") or ids.get("run_uuid", "")}),
                 ("run", "info", "artifact_uri"))]
    if owner == MODEL_VERSION:
        query = urlencode({"name": ids.get("name", ""), "version": ids.get("version", "")})
        return [(f"{api}/2.0/mlflow/model-versions/get-download-uri?{query}", ("artifact_uri",))]
    if owner == LOGGED_MODEL:
        return [(f"{api}/2.0/mlflow/logged-models/{quote(route_id, safe='')}", ("model", "info", "artifact_uri"))]
    trace = quote(ids.get("request_id", ""), safe="")
    return [(f"{api}/3.0/mlflow/traces/{trace}", ("trace", "trace_info", "tags", TRACE_LOCATION_TAG)),
            (f"{api}/2.0/mlflow/traces/{trace}/info", ("trace_info", "tags", TRACE_LOCATION_TAG))]


TRACE_LOCATION_TAG = "mlflow.artifactLocation"
TRACE_ARCHIVE_TAG = "mlflow.trace.archiveLocation"  # MLflow 3.x: where a trace's archived spans are
LOCATION_TAGS = (TRACE_LOCATION_TAG, TRACE_ARCHIVE_TAG)
LOCATION_FIELDS = ("artifact_location", "artifactLocation")  # protobuf field name and its JSON name


def dig(data, keys):
    """Follow `keys` into MLflow's JSON; a list of {key, value} tags counts as a mapping."""
    for key in keys:
        if isinstance(data, list):
            data = {t.get("key"): t.get("value") for t in data if isinstance(t, dict)}
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if isinstance(data, str) else None


class ArtifactRequest:
    """What an artifact request names, read from its query string as MLflow's handlers read it."""

    def __init__(self, route, route_id: str, query_string: str, prefix: str):
        params = parse_qs(query_string, keep_blank_values=True)
        names = tuple(route.ids) + ((route.path_param,) if route.path_param else ())
        # MLflow's handlers read the first value, protobuf parsing may read another: take no chances.
        self.repeated = [n for n in names if len(params.get(n, ())) > 1]
        self.owner = route.owner
        ids = {n: params.get(n, [""])[0] for n in route.ids}
        relative = params.get(route.path_param, [""])[0] if route.path_param else ""
        if route.owner == TRACE:
            relative = "attachments/" + relative if relative else "traces.json"
        self.relative = relative
        self.encoded = bool(route.path_param) and changed_by_mlflow_decoding(params.get(route.path_param, [""])[0])
        self.queries = location_queries(route.owner, ids, route_id, prefix)

    def refusal(self, answers, roots) -> str:
        """'' if the request may pass; `answers` are (status, JSON) for self.queries, in order."""
        if self.repeated:
            return f"This artifact request repeats the parameter {self.repeated[0]!r}; send it once."
        if self.encoded:
            return ("This artifact path still holds percent-encoded or special characters after one decoding; "
                    "MLflow would decode it again and open another file, so send the path decoded.")
        for (status, data), (_, keys) in zip(answers, self.queries):
            if status != 200:
                continue
            location = dig(data, keys)
            if location is None:
                # A trace with no artifact location has no artifact files for MLflow to reach.
                return "" if self.owner == TRACE else "MLflow did not say where these artifacts are kept."
            # MLflow 3.x serves an archived trace's spans from its archive location instead.
            archive = dig(data, keys[:-1] + (TRACE_ARCHIVE_TAG,)) if self.owner == TRACE else None
            return (outside_roots_refusal(location, self.relative, roots)
                    or (outside_roots_refusal(archive, "", roots) if archive else ""))
        return f"MLflow could not find the {self.owner} whose artifacts were asked for."
