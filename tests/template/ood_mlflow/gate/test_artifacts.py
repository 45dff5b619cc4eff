"""Artifact confinement: the real path a request reaches, against the allowed roots."""

import json
import os

from ood_mlflow.gate import artifacts as rules
from ood_mlflow.gate.routes import ARTIFACT_ROUTES


def make_roots(tmp_path):
    store = tmp_path / "project" / "mlruns"
    (store / "1" / "abc" / "artifacts").mkdir(parents=True)
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    return store, rules.allowed_roots("directory", str(store), str(store))


def test_paths_inside_the_store_pass(tmp_path):
    store, roots = make_roots(tmp_path)
    location = f"file://{store}/1/abc/artifacts"
    assert rules.outside_roots_refusal(location, "model/MLmodel", roots) == ""
    assert rules.outside_roots_refusal(str(store / "1/abc/artifacts"), "", roots) == ""


def test_escapes_are_refused_and_name_the_site_key(tmp_path):
    store, roots = make_roots(tmp_path)
    home = tmp_path / "home"
    for location, relative in [(str(home), ".ssh/id_rsa"), (f"file://{store}/1/abc/artifacts", "../../../../home/x"),
                               (f"file://{store}/1/abc/artifacts", str(home / ".bashrc")),
                               (f"file://{str(store).replace('/mlruns', '/%6Dlruns-not')}", ""),
                               ("s3://bucket/x", "y"), ("mlflow-artifacts:/1/abc", "y"), ("relative/path", "")]:
        message = rules.outside_roots_refusal(location, relative, roots)
        assert "artifact_roots" in message, (location, relative)


def test_percent_encoding_is_decoded_as_mlflow_does(tmp_path):
    store, roots = make_roots(tmp_path)
    encoded = f"file://{str(store.parent)}/%6Dlruns/1/abc/artifacts"  # %6D is "m"
    assert rules.resolve(encoded) == str(store / "1/abc/artifacts")
    assert rules.outside_roots_refusal(encoded, "", roots) == ""


def test_encoded_dots_in_a_plain_path_are_decoded_as_mlflow_does(tmp_path):
    store, roots = make_roots(tmp_path)
    sneaky = f"{store}/1/abc/artifacts/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/home"  # MLflow reads it as .../../../home
    assert rules.resolve(sneaky) == str(tmp_path / "home")
    assert "artifact_roots" in rules.outside_roots_refusal(sneaky, "", roots)
    encoded_up = "/".join(["%2E%2E"] * 5)
    up_and_out = f"file://{store}/1/abc/artifacts/{encoded_up}/home"
    assert "artifact_roots" in rules.outside_roots_refusal(up_and_out, "", roots)


def test_a_symlink_out_of_the_store_is_followed_and_refused(tmp_path):
    store, roots = make_roots(tmp_path)
    os.symlink(tmp_path / "home", store / "1" / "abc" / "artifacts" / "link")
    assert rules.outside_roots_refusal(str(store / "1/abc/artifacts"), "link/.ssh/id_rsa", roots)
    assert rules.outside_roots_refusal(str(store / "1/abc/artifacts/link"), "", roots)


def test_site_roots_and_sqlite_folders(tmp_path):
    db = tmp_path / "project" / "mlruns.db"
    roots = rules.allowed_roots("sqlite", str(db), str(tmp_path / "project" / "mlartifacts"), [str(tmp_path / "extra")])
    assert rules.outside_roots_refusal(str(tmp_path / "project" / "run-artifacts"), "", roots) == ""
    assert rules.outside_roots_refusal(str(tmp_path / "extra" / "a"), "", roots) == ""
    assert rules.outside_roots_refusal(str(tmp_path / "extra-not" / "a"), "", roots)


def test_experiment_locations_outside_are_refused(tmp_path):
    store, roots = make_roots(tmp_path)
    assert rules.experiment_location_refusal(json.dumps({"name": "x"}).encode(), roots) == ""
    assert rules.experiment_location_refusal(json.dumps({"name": "x", "artifact_location": str(store)}).encode(),
                                             roots) == ""
    assert rules.experiment_location_refusal(json.dumps({"artifact_location": str(tmp_path / "home")}).encode(), roots)


def test_graphql_artifact_listing_is_found_even_when_escaped():
    assert rules.graphql_lists_artifacts(b'{"query": "{ mlflowListArtifacts(input: {runId: \\"x\\"}) { root } }"}', "")
    assert rules.graphql_lists_artifacts(b'{"query": "{ a: mlflowList\\u0041rtifacts { root } }"}', "")
    assert rules.graphql_lists_artifacts(b"", "query=%7BmlflowListArtifacts%7D")
    get_run = b'{"query": "query { mlflowGetRun(input: {runId: \\"x\\"}) { run { info { artifactUri } } } }"}'
    assert not rules.graphql_lists_artifacts(get_run, "")


def route(owner):
    return next(r for r in ARTIFACT_ROUTES if r.owner == owner)


def test_artifact_requests_ask_mlflow_where_the_owner_keeps_artifacts(tmp_path):
    store, roots = make_roots(tmp_path)
    request = rules.ArtifactRequest(route("run"), "", "run_uuid=abc&path=a.txt", "/node/n/1")
    assert request.queries[0][0] == "/node/n/1/ajax-api/2.0/mlflow/runs/get?run_id=abc"
    inside = {"run": {"info": {"artifact_uri": f"{store}/1/abc/artifacts"}}}
    assert request.refusal([(200, inside)], roots) == ""
    outside = {"run": {"info": {"artifact_uri": str(tmp_path / "home")}}}
    assert "artifact_roots" in request.refusal([(200, outside)], roots)
    assert request.refusal([(404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})], roots)
    twice = rules.ArtifactRequest(route("run"), "", "run_id=abc&path=a.txt&path=../../x", "")
    assert "repeats" in twice.refusal([(200, inside)], roots)


def test_trace_locations_come_from_either_api_version(tmp_path):
    store, roots = make_roots(tmp_path)
    request = rules.ArtifactRequest(route("trace"), "", "request_id=tr-1", "")
    v2 = {"trace_info": {"tags": [{"key": "mlflow.artifactLocation", "value": str(tmp_path / "home")}]}}
    assert request.refusal([(404, None), (200, v2)], roots)
    v3 = {"trace": {"trace_info": {"tags": {"mlflow.artifactLocation": f"{store}/1/traces/tr-1/artifacts"}}}}
    assert request.refusal([(200, v3)], roots) == ""


def test_paths_that_mlflow_would_decode_again_are_refused_on_every_artifact_route(tmp_path):
    store, roots = make_roots(tmp_path)
    inside = {"run": {"info": {"artifact_uri": f"{store}/1/abc/artifacts"}},
              "artifact_uri": f"{store}/1/abc/artifacts", "model": {"info": {"artifact_uri": str(store)}},
              "trace": {"trace_info": {"tags": {"mlflow.artifactLocation": str(store)}}}}
    # The query as the web server hands it over; parse_qs decodes it once, as the server does.
    for encoded in ("lnk%252Fid_rsa", "lnk%252F..%252F..%252Fhome", "a%2541", "lnk%3F", "x%3B", "a%0Ab"):
        for artifact_route in ARTIFACT_ROUTES:
            query = f"run_id=abc&request_id=tr-1&name=m&version=1&{artifact_route.path_param}={encoded}"
            request = rules.ArtifactRequest(artifact_route, "m-1", query, "")
            assert "decoding" in request.refusal([(200, inside)] * 2, roots), (artifact_route.pattern, encoded)
    plain = rules.ArtifactRequest(route("run"), "", "run_id=abc&path=50%25%20done.txt", "")
    assert plain.refusal([(200, inside)], roots) == "", "a literal % that is no escape stays a path"


def test_mlflows_decoding_is_what_the_check_follows():
    assert rules.changed_by_mlflow_decoding("lnk%2Fid_rsa")  # unquote
    assert rules.changed_by_mlflow_decoding("lnk?") and rules.changed_by_mlflow_decoding("lnk;")  # urlunparse
    assert not rules.changed_by_mlflow_decoding("models/model.pkl")
    assert not rules.changed_by_mlflow_decoding("100%.txt")


def test_experiment_locations_are_read_as_mlflow_reads_them(tmp_path):
    store, roots = make_roots(tmp_path)
    home = str(tmp_path / "home")
    for body in ({"name": "x", "artifactLocation": home},  # protobuf's JSON name, which MLflow accepts
                 json.dumps({"name": "x", "artifact_location": home}),  # a JSON string of JSON: decoded twice
                 {"name": "x", "artifact_location": str(store), "artifactLocation": home}):
        assert "artifact_roots" in rules.experiment_location_refusal(json.dumps(body).encode(), roots), body
    assert rules.experiment_location_refusal(json.dumps({"name": "x", "artifactLocation": str(store)}).encode(),
                                             roots) == ""
    assert rules.location_refusal({"artifact_location": ["/"]}, roots)


def test_trace_location_tags_are_checked_wherever_they_are_set(tmp_path):
    store, roots = make_roots(tmp_path)
    home = str(tmp_path / "home")
    archive = "mlflow.trace.archiveLocation"
    for body in ({"experiment_id": "1", "key": archive, "value": home},  # set-experiment-tag, trace tags
                 {"name": "x", "tags": [{"key": archive, "value": home}]},  # experiments/create
                 {"trace": {"trace_info": {"tags": {archive: home}}}},  # 3.x start-trace: tags as a map
                 {"key": "mlflow.artifactLocation", "value": f"file://{home}"}):
        assert "artifact_roots" in rules.location_refusal(body, roots), body
    assert rules.location_refusal({"key": archive, "value": str(store / "archive")}, roots) == ""
    assert rules.location_refusal({"key": "mlflow.note.content", "value": home}, roots) == ""


def test_an_archived_traces_location_is_checked_too(tmp_path):
    store, roots = make_roots(tmp_path)
    request = rules.ArtifactRequest(route("trace"), "", "request_id=tr-1", "")
    tags = {"mlflow.artifactLocation": str(store), "mlflow.trace.archiveLocation": str(tmp_path / "home")}
    assert "artifact_roots" in request.refusal([(200, {"trace": {"trace_info": {"tags": tags}}})], roots)
    tags["mlflow.trace.archiveLocation"] = str(store / "archive")
    assert request.refusal([(200, {"trace": {"trace_info": {"tags": tags}}})], roots) == ""
