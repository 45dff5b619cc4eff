"""What a request's body may ask for, checked before MLflow reads it (pure).

The gate reads (up to MAX_INSPECTED_BODY) the body of every
request it passes that MLflow reads as JSON: every method but GET and HEAD, and
a GET or HEAD that sends a body, except upload-artifact (the file itself; its
path is checked from the query) and GraphQL (checked for artifact listing). The
body is parsed as MLflow parses it (request_json), then:
- every ID in it must have MLflow's shape (ids.py);
- a model registry request must not name the model `.` or `..` (ids.py);
- a location it sets (an experiment's artifact location, a trace location tag)
  must lie under the allowed roots (artifacts.py).
A body the gate cannot parse as MLflow would use it is refused: MLflow would
take a broken body for an empty request.
"""

from __future__ import annotations

from . import artifacts, ids, request_json

JSON, GRAPHQL = "json", "graphql"  # Decision.inspect
# Far above any JSON body MLflow's UI sends, and a bound on what a request makes the gate hold in memory.
MAX_INSPECTED_BODY = 1 << 20
TOO_LARGE = "This request is too large for the Open OnDemand MLflow session."
NOT_JSON = ("The Open OnDemand MLflow session could not read this request's body as the JSON object MLflow "
            "expects, so it did not pass it on.")
GRAPHQL_ARTIFACTS = ("Listing artifacts through GraphQL is switched off in Open OnDemand sessions; the UI lists "
                     "them another way.")


def body_refusal(inspect: str, route: str, body: bytes, query: str, roots) -> str:
    """'' if the body may pass to MLflow, else the message the UI shows. `roots` None: the test-only
    switch, no checks."""
    if roots is None:
        return ""
    if len(body) > MAX_INSPECTED_BODY:
        return TOO_LARGE
    if inspect == GRAPHQL:
        return GRAPHQL_ARTIFACTS if artifacts.graphql_lists_artifacts(body, query) else ""
    try:
        data = request_json.parse(body)
    except ValueError:
        return NOT_JSON
    return (ids.json_refusal(data) or ids.registry_refusal(route, data)
            or artifacts.location_refusal(data, roots))
