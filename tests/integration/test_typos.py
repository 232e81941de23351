"""Typo tolerance on the default catalogue: the seed's own example "tayler love".

builtin:music-demo holds "Kingdom Love" by Taylor Whitfield and "Dreaming Love" by Taylor
Romero, and the title "Love" by Andre Fontaine. Before spelling correction, BM25 could not
use "tayler" and the structured strategy read only the title "Love". Both now put a
Taylor love song first; the demo's fused order (tests/live/test_serve.py) shows it in the
top 3.
"""
from __future__ import annotations

import pytest

from ranking.fusion import union
from retrievers.index import IndexHandle
from tests.helpers.service import built_index


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> IndexHandle:
    out = built_index("builtin:music-demo", tmp_path_factory.mktemp("typos") / "index", "lexical,structured,memory")
    return IndexHandle.open(out)


def taylor_love(catalog, item_id: str) -> bool:
    f = catalog[item_id].fields
    return f["artist"].startswith("Taylor ") and "love" in f["title"].lower().split()


def test_tayler_love_finds_a_taylor_love_song(index):
    catalog = index.catalog()
    lexical, structured, memory = (index.load(s) for s in ("lexical", "structured", "memory"))
    assert lexical.expand("tayler love") == "tayler love taylor"
    got = {s.name: s.retrieve("tayler love", 25) for s in (lexical, structured, memory)}
    assert taylor_love(catalog, got["lexical"][0].item_id)
    assert taylor_love(catalog, got["structured"][0].item_id) or taylor_love(catalog, got["structured"][1].item_id)
    fused = union(got)
    assert any(taylor_love(catalog, c.item_id) for c in fused[:3])
