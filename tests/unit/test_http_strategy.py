"""The external-HTTP strategy example (retrievers/http_search.py) against a local stub of an
Elasticsearch-style `_search` endpoint, and its registration by import path."""
from __future__ import annotations

import httpx
import pytest

from deployments.config import AppArgs
from deployments.retriever import load_custom
from tests.helpers.catalogue import tiny_dataset
from tests.helpers.search_stub import SearchStub

IMPORT_PATH = "retrievers.http_search:HttpSearchRetriever"


@pytest.fixture(scope="module")
def stub():
    with SearchStub(tiny_dataset().items) as s:
        yield s


def test_candidates_come_from_the_service(stub):
    http = load_custom({"import_path": IMPORT_PATH, "args": {"url": stub.url, "name": "http"}}, "unused")
    got = http.retrieve("love story taylor swift", 3)
    assert got[0].item_id == "t01" and [c.rank for c in got] == [1, 2, 3]
    assert all(c.strategy == "http" for c in got) and got[0].score == 4.0
    assert http.retrieve("qwzx", 5) == []


def test_a_failing_service_raises_so_the_orchestrator_degrades(stub):
    http = load_custom({"import_path": IMPORT_PATH, "args": {"url": stub.url}}, "unused")
    stub.fail = True
    try:
        with pytest.raises(httpx.HTTPStatusError):
            http.retrieve("love", 3)
    finally:
        stub.fail = False


def test_registration_by_import_path_is_validated():
    args = AppArgs.model_validate({"index_dir": "x", "custom_strategies": {
        "http": {"import_path": IMPORT_PATH, "args": {"url": "http://127.0.0.1:9/_search"}}}})
    assert args.all_strategies[-1] == "http" and args.all_strategies[:-1] == args.strategies
    for bad in ({"lexical": {"import_path": IMPORT_PATH}}, {"Bad Name": {"import_path": IMPORT_PATH}},
                {"http": {"import_path": "not a path"}}):
        with pytest.raises(ValueError):
            AppArgs.model_validate({"index_dir": "x", "custom_strategies": bad})
