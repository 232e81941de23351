"""Bad request bodies get a 4xx that can be written, whatever they hold (deployments/http_errors.py).

The app here has the orchestrator's request models, body limit and error handlers, with
handlers that only echo: the live property test (tests/live/test_serve_resilience.py) drives the
real service with the same bodies."""
from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from deployments import http_errors
from deployments.http_errors import json_safe
from deployments.limits import BodyLimit
from deployments.schemas import FeedbackRequest, SearchRequest
from tests.helpers.hostile_json import feedback_body, search_body

api = FastAPI()
api.add_middleware(BodyLimit)
http_errors.install(api)


@api.post("/search")
def search(req: SearchRequest) -> dict:
    return {"query": req.query, "context": req.context}


@api.post("/feedback")
def feedback(req: FeedbackRequest) -> dict:
    return req.model_dump()


client = TestClient(api, raise_server_exceptions=False)


def post(path: str, body: bytes):
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("path,body,status,where", [
    ("/search", b'{"query": "\\ud800", "k": 5}', 422, "query"),
    ("/search", b'{"query": "jazz", "k": NaN}', 422, "k"),
    ("/search", b'{"query": "jazz", "k": 1e400}', 422, "k"),
    ("/search", b'{"query": "jazz", "context": {"ts": Infinity}}', 422, "ts"),
    ("/search", b'{"query": "jazz", "context": {"x": "\\udc00\\ud800"}}', 422, "x"),
    ("/search", b'"\\ud83d"', 422, "body"),
    ("/feedback", b'{"request_id": "r", "events": [{"event_id": "e", "item_id": "i", "type": "click", '
                  b'"position": 1, "ts": -Infinity}]}', 422, "ts"),
    ("/feedback", b'{"request_id": "\\udfff", "events": []}', 422, "request_id"),
    ("/search", b'{"query": "jazz", "k": ' + b"9" * 5000 + b"}", 400, "4300 digits"),
    ("/search", b"[" * 5000 + b"]" * 5000, 400, "RecursionError"),
    ("/search", b'{"query": "\xff"}', 400, "UnicodeDecodeError"),
])
def test_unwritable_inputs_get_a_clear_4xx(path, body, status, where):
    r = post(path, body)
    assert r.status_code == status, r.text
    assert where in r.text
    detail = r.json()["detail"]
    assert detail and (isinstance(detail, str) or all(d["msg"] for d in detail))


def test_accepted_hostile_text_goes_through():
    r = post("/search", b'{"query": "a\\u0000\\b\\/\\ud83d\\ude00\\uD83D\\uDE00\xf0\x9f\x98\x80", '
                        b'"context": {"\\u0000": "\\t"}}')
    assert r.status_code == 200, r.text
    assert r.json()["query"] == "a\x00\b/\U0001F600\U0001F600\U0001F600"


def test_json_safe_writes_everything():
    value = {"\ud800": [float("nan"), float("inf"), -float("inf"), "x" * 1000, {"a": {"b": {"c": {"d": 1}}}}]}
    out = json_safe(value)
    text = json.dumps(out, allow_nan=False).encode("utf-8")
    assert b"\\\\ud800" in text and b'"NaN"' in text and b'"-Infinity"' in text
    assert len(out["\\ud800"][3]) == 203


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(search=search_body(["chill jazz", "x" * 600, "   "]), fb=feedback_body(["r1"], ["track-1"]))
def test_no_parseable_body_is_a_server_error(search, fb):
    for path, body in (("/search", search), ("/feedback", fb)):
        json.loads(body)  # the generator writes only what Python's parser accepts
        r = post(path, body.encode("utf-8"))
        assert r.status_code < 500, (path, body, r.text)
        assert r.status_code in (200, 400, 413, 422), (path, body, r.text)
        r.json()
