"""The worked example of "your own catalogue": examples/bookshop (a CSV in its own shape and
its schema file) goes through `ltrr index` and `ltrr eval` like a built-in dataset, and its
declared entities (writers, series) come back from the index."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.entities import EntityIndex
from ingest.registry import load_dataset
from ltrr.evaluate import evaluate
from retrievers.index import IndexHandle
from tests.helpers.service import built_index, ltrr

BOOKS = str(Path(__file__).resolve().parents[2] / "examples" / "bookshop" / "books.csv")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return built_index(BOOKS, tmp_path_factory.mktemp("bookshop") / "index")


def test_index_and_evaluate(index: Path):
    run = ltrr("eval", "--index", str(index), "--dataset", BOOKS, "--split", "test", "--strategy", "structured",
               "--json")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["queries"] == 26 and got["ndcg@10"] >= 0.95, got
    lexical = evaluate(IndexHandle.open(index), load_dataset(BOOKS), "test", "lexical", progress=False)
    assert lexical["ndcg@10"] >= 0.9, lexical


def test_entities_and_a_misspelled_writer(index: Path):
    handle = IndexHandle.open(index)
    assert set(handle.strategies) == {"lexical", "dense", "memory", "popularity", "structured", "explore"}
    entities = EntityIndex(handle.entities())
    top = [c.item_id for c in handle.load("structured").retrieve("ada aswhorth", 5)]
    catalog = handle.catalog()
    assert top and all(catalog[i].fields["writer"] == "Ada Ashworth" for i in top)
    assert entities.related(top, limit=3)[0].entity.id == "writer:ada ashworth"
    assert [h.entity.name for h in entities.cards("the distant forest cycle")] == ["The Distant Forest Cycle"]
