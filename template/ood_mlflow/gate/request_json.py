"""A request's JSON body as MLflow's handlers read it (pure).

MLflow's `_get_request_json` is Flask's `get_json(force=True, silent=True)`,
which is `json.loads` on the raw bytes (UTF-8, -16 or -32, found as json.loads
finds it), whatever the Content-Type; `_get_normalized_request_json` (3.x, and
the same lines in 2.x's `_get_request_message`) decodes a JSON string a second
time ("older clients may post their JSON double-encoded"), and takes an empty
body, or `null`, for {}. A GET request's body is read only when its query
string is empty; the gate reads it whenever one is sent.
"""

from __future__ import annotations

import json


def parse(body: bytes):
    """The JSON MLflow would act on; raises ValueError for a body it could not use as a request."""
    if not body.strip():
        return {}
    data = json.loads(body)
    if isinstance(data, str):
        data = json.loads(data)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("a request body must be a JSON object")
    return data
