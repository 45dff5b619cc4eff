"""IDs a request names must have the shape MLflow gives them (pure).

A directory store turns IDs into paths: `traces/delete-traces` removes
`<experiment>/traces/<id>` for every ID in the body, `POST traces` (3.x) makes
that folder, `runs/outputs` makes `<run>/outputs/<model_id>`, and MLflow checks
none of them, so an ID that is an absolute path or `../..` reaches any folder
the owner can write. A registered model named `.` or `..` is, in MLflow 2.22's
directory registry, the registry or the store itself (`registered-models/delete`
removes it). The gate therefore lets an ID pass only in the shape MLflow makes
it, on every store kind (SQLite and PostgreSQL stores use the same shapes):

- experiments: digits (`_generate_unique_integer_id`, or the database's
  integer key; `0` is the default experiment);
- runs: `uuid.uuid4().hex`, 32 lower-case hexadecimal digits;
- traces: `tr-` and the 32 hexadecimal digits of the OpenTelemetry trace ID
  (3.x, `generate_trace_id_v3`), or 32 hexadecimal digits (2.x request IDs,
  `generate_request_id_v2`);
- logged models: `m-` and 32 hexadecimal digits; assessments: `a-` and 32;
- model versions: digits.

IDs are looked for where MLflow's handlers read them: the route's variables
(`<trace_id>`), the query string (repeated parameters too) and the JSON body,
anywhere in it, under the protobuf field name and its JSON (camelCase) name,
which MLflow's parser accepts as well. Free-form values MLflow stores as they
are (a tag's or feedback's `value`, metadata maps) are not looked into.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

HEX32 = "[0-9a-f]{32}"
SHAPES = {  # kind: (pattern, how the message describes it)
    "experiment": (re.compile("[0-9]{1,32}"), "digits"),
    "run": (re.compile(HEX32), "32 hexadecimal digits"),
    "trace": (re.compile(f"(?:tr-)?{HEX32}"), "'tr-' and 32 hexadecimal digits"),
    "logged model": (re.compile(f"m-{HEX32}"), "'m-' and 32 hexadecimal digits"),
    "assessment": (re.compile(f"a-{HEX32}"), "'a-' and 32 hexadecimal digits"),
}
_FIELDS = {
    "experiment": ("experiment_id", "experiment_ids"),
    "run": ("run_id", "run_ids", "run_uuid", "source_run_id"),
    "trace": ("trace_id", "trace_ids", "request_id", "request_ids"),
    "logged model": ("model_id", "model_ids"),
    "assessment": ("assessment_id",),
}


def camel(name: str) -> str:
    """Protobuf's JSON name of a field: run_uuid -> runUuid."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


FIELDS = {spelling: kind for kind, names in _FIELDS.items() for name in names for spelling in (name, camel(name))}
# Values MLflow keeps as given and never reads an ID from.
FREE_FORM = {"value", "metadata", "trace_metadata", "traceMetadata", "request_metadata", "requestMetadata"}
REGISTRY_ROUTE = re.compile(r".*/(?:registered-models|model-versions)/.*")


def refusal_message(kind: str, value) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return (f"This request names the {kind} ID {shown}, which is not an ID MLflow makes "
            f"({SHAPES[kind][1]}): the Open OnDemand MLflow session refuses it.")


def value_refusal(kind: str, value, in_list: bool = False) -> str:
    """'' if `value` may stand for an ID of `kind`; "" and None mean no ID, except inside a list."""
    if value is None or (value == "" and not in_list):
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return refusal_message(kind, value)
    return "" if SHAPES[kind][0].fullmatch(str(value)) else refusal_message(kind, value)


def field_refusal(name: str, value) -> str:
    kind = FIELDS[name]
    if isinstance(value, list):
        return next((m for m in (value_refusal(kind, v, in_list=True) for v in value) if m), "")
    return value_refusal(kind, value)


def json_refusal(data) -> str:
    """'' unless a JSON body names an ID anywhere in it that has the wrong shape."""
    if isinstance(data, list):
        return next((m for m in map(json_refusal, data) if m), "")
    if not isinstance(data, dict):
        return ""
    for key, value in data.items():
        message = field_refusal(key, value) if key in FIELDS else "" if key in FREE_FORM else json_refusal(value)
        if message:
            return message
    return ""


def query_refusal(query: str) -> str:
    """'' unless a query parameter names an ID of the wrong shape (decoded once, as the web server does)."""
    params = parse_qs(query, keep_blank_values=True)
    for name in params.keys() & FIELDS.keys():
        message = next((m for m in (value_refusal(FIELDS[name], v) for v in params[name]) if m), "")
        if message:
            return message
    return ""


def path_refusal(variables: dict) -> str:
    """'' unless a route variable (`<trace_id>`, `<model_id>`, ...) names an ID of the wrong shape."""
    for name, value in variables.items():
        if name in FIELDS:
            message = value_refusal(FIELDS[name], value, in_list=True)  # a route variable is never empty
            if message:
                return message
    return ""


def registry_refusal(route: str, fields) -> str:
    """'' unless a model registry request names a model `.` or `..`, or a version that is not digits.

    `fields`: the JSON body's top level, or the query's parameters (lists of values)."""
    if not REGISTRY_ROUTE.fullmatch(route) or not isinstance(fields, dict):
        return ""
    for key, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            if key in ("name", "new_name", "newName") and one in (".", ".."):
                return (f"This request names the registered model {one!r}, which a directory store's registry "
                        f"would take for a folder of its own: the Open OnDemand MLflow session refuses it.")
            if key == "version" and one not in (None, "") and not _digits(one):
                return f"This request names the model version {one!r}; MLflow numbers versions 1, 2, 3, ..."
    return ""


def _digits(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and bool(
        re.fullmatch("[0-9]{1,32}", str(value)))


def request_refusal(route: str, variables: dict, query: str) -> str:
    """'' unless the route's variables or the query string name an ID of the wrong shape."""
    params = parse_qs(query, keep_blank_values=True)
    return path_refusal(variables) or query_refusal(query) or registry_refusal(route, params)
