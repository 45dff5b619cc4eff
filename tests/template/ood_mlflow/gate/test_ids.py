"""IDs must have MLflow's shape wherever a request names them; bodies are read as MLflow reads them."""

import json

import pytest

from ood_mlflow.gate import bodies, ids, request_json

HEX = "0123456789abcdef" * 2
RUN, TRACE, MODEL = HEX, "tr-" + HEX, "m-" + HEX
DELETE_TRACES = "/ajax-api/2.0/mlflow/traces/delete-traces"


def refusal(body, route=DELETE_TRACES, roots=("/store",)):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return bodies.body_refusal(bodies.JSON, route, raw, "", roots)


@pytest.mark.parametrize("body", [
    {"experiment_id": "0", "request_ids": ["/home/owner/projects"]},  # FileStore would rmtree the folder
    {"experiment_id": "0", "request_ids": ["../../.."]},
    {"experiment_id": "0", "trace_ids": [TRACE, "/home/owner"]},
    {"experiment_id": "0", "requestIds": ["/home/owner"]},  # protobuf's JSON name, which MLflow parses too
    {"experiment_id": "../0", "request_ids": [TRACE]},
    {"experiment_id": "0", "request_ids": [""]},  # joined to the traces folder: all of them
    {"experiment_id": "0", "request_ids": [7]},
])
def test_the_delete_traces_attack_is_refused(body):
    assert "not an ID MLflow makes" in refusal(body)


def test_nested_ids_are_found():
    start = {"trace": {"trace_info": {"trace_id": "/home/owner/.bashrc.d/x", "trace_location": {
        "type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}}}}}
    assert "trace ID" in refusal(start, "/ajax-api/3.0/mlflow/traces")
    outputs = {"run_id": RUN, "models": [{"model_id": "../../../home/owner", "step": 0}]}
    assert "logged model ID" in refusal(outputs, "/ajax-api/2.0/mlflow/runs/outputs")
    camel = {"trace": {"traceInfo": {"traceId": "/tmp/x"}}}
    assert "trace ID" in refusal(camel, "/ajax-api/3.0/mlflow/traces")


@pytest.mark.parametrize("body", [
    {"experiment_id": "0", "request_ids": [HEX, TRACE]},
    {"experiment_ids": ["0", "184496437929007696"], "max_results": 100, "run_view_type": "ACTIVE_ONLY"},
    {"run_id": RUN, "run_uuid": RUN, "key": "mlflow.note.content", "value": "../../ not an ID"},
    {"run_id": "", "run_uuid": RUN, "key": "k", "value": "v"},  # "" is protobuf's unset
    {"assessment": {"trace_id": TRACE, "assessment_name": "correct", "source": {"source_type": "HUMAN"},
                    "feedback": {"value": {"run_id": "free text the user typed"}},
                    "metadata": {"model_id": "anything"}}},
    {"name": "my-model", "source": f"models:/{MODEL}", "run_id": RUN, "model_id": MODEL},
    {},
])
def test_what_the_ui_sends_passes(body):
    assert refusal(body, "/ajax-api/2.0/mlflow/model-versions/create") == ""


def test_bodies_are_parsed_as_mlflow_parses_them():
    attack = {"experiment_id": "0", "request_ids": ["/home/owner"]}
    assert "not an ID" in refusal(json.dumps(json.dumps(attack)).encode())  # decoded twice by MLflow
    assert "not an ID" in refusal(json.dumps(attack).encode("utf-16"))  # json.loads finds the encoding
    assert request_json.parse(b"") == {} and request_json.parse(b"null") == {} and request_json.parse(b" ") == {}
    # MLflow takes a body it cannot parse for an empty request; the gate does not pass it on.
    for broken in (b"{", b"[1]", b'"not json"', b"\xff\xfe\x00", b"a=b"):
        assert refusal(broken) == bodies.NOT_JSON, broken
    assert refusal(b"{}" + b" " * (1 << 20)) == bodies.TOO_LARGE


def test_graphql_bodies_keep_their_own_check():
    body = b'{"query": "{ mlflowListArtifacts(input: {runId: \\"x\\"}) { root } }"}'
    assert bodies.body_refusal(bodies.GRAPHQL, "/graphql", body, "", ("/s",)) == bodies.GRAPHQL_ARTIFACTS
    assert bodies.body_refusal(bodies.GRAPHQL, "/graphql", b"not json", "", ("/s",)) == ""


def test_the_test_only_switch_checks_nothing():
    assert bodies.body_refusal(bodies.JSON, DELETE_TRACES, b'{"request_ids": ["/home"]}', "", None) == ""


@pytest.mark.parametrize("query,bad", [
    ("run_id=" + RUN, False), ("run_uuid=" + RUN + "&path=a.txt", False), ("run_uuid=artifacts&path=x", True),
    ("run_id=" + RUN + "&run_id=..", True), ("request_id=" + TRACE, False), ("request_id=%2Fhome", True),
    ("experiment_id=0", False), ("experiment_id=1%0A", True), ("experiment_ids=1&experiment_ids=x", True),
    ("trace_ids=" + TRACE + "&trace_ids=" + HEX, False), ("run%5Fid=..", True), ("run_uuid=", False),
    ("run_id=" + RUN.upper(), True),
])
def test_query_ids(query, bad):
    assert bool(ids.request_refusal("/get-artifact", {}, query)) is bad


@pytest.mark.parametrize("variables,bad", [
    ({"trace_id": TRACE}, False), ({"request_id": HEX}, False), ({"model_id": MODEL}, False),
    ({"trace_id": ".."}, True), ({"request_id": "tr-" + HEX[:-1]}, True), ({"model_id": "m-1"}, True),
    ({"trace_id": TRACE, "assessment_id": "a-" + HEX}, False), ({"trace_id": TRACE, "assessment_id": ".."}, True),
    ({"dataset_id": "anything"}, False), ({"tag_key": ".."}, False),  # not IDs that reach files
])
def test_route_variables(variables, bad):
    assert bool(ids.request_refusal("/ajax-api/3.0/mlflow/traces/x", variables, "")) is bad


def test_registered_models_named_like_folders_are_refused():
    delete = "/ajax-api/2.0/mlflow/registered-models/delete"
    assert "registered model '..'" in refusal({"name": ".."}, delete)  # MLflow 2.22 would remove the store
    assert "registered model '.'" in refusal({"name": "."}, delete)
    assert refusal({"name": "my..model"}, delete) == ""
    assert "model version" in refusal({"name": "m", "version": "1/../.."}, "/ajax-api/2.0/mlflow/model-versions/delete")
    assert refusal({"name": "m", "version": "3"}, "/ajax-api/2.0/mlflow/model-versions/delete") == ""
    assert refusal({"name": ".."}, "/ajax-api/2.0/mlflow/experiments/create") == ""  # experiment names are not paths
    assert ids.request_refusal("/model-versions/get-artifact", {}, "name=..&version=1&path=x")
    assert ids.request_refusal("/model-versions/get-artifact", {}, "name=m&version=1&name=..")
