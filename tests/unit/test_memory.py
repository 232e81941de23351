"""MemoryRetriever: seeded predicted queries, token-overlap matching, learning that persists."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import BadRequest, IndexError_
from retrievers.base import MAX_QUERY_CHARS, Query
from retrievers.memory import EVENT_WEIGHTS, MIN_OVERLAP, MemoryRetriever
from tests.helpers.catalogue import tiny_dataset


@pytest.fixture()
def memory(tmp_path):
    MemoryRetriever.build(tiny_dataset(), tmp_path / "memory")
    return MemoryRetriever.load(tmp_path / "memory")


def ids(cands):
    return [c.item_id for c in cands]


def test_exact_title_query(memory):
    got = memory.retrieve("Love Story!", 10)
    assert ids(got) == ["t01"]
    assert 1.0 <= got[0].score < 2.0 and got[0].rank == 1 and got[0].strategy == "memory"


def test_artist_query_lists_hits_first(memory):
    assert ids(memory.retrieve("taylor swift", 5)) == ["t02", "t01", "t03", "t30", "t04"]


def test_title_artist_seed(memory):
    assert ids(memory.retrieve("Shake it off Taylor Swift", 1)) == ["t02"]


def test_token_overlap_finds_longer_and_shorter_keys(memory):
    got = memory.retrieve("love story taylor", 3)
    assert got[0].item_id == "t01"
    assert got[0].score < 1.0  # overlap tier, below every exact match
    assert memory.retrieve("nothing else", 3)[0].item_id == "t17"  # 2 of 3 key words


def test_low_overlap_is_ignored(memory):
    # "story": Jaccard 1/2 with "love story" (kept), 1/4 with "story of my life" (dropped)
    assert ids(memory.retrieve("story", 10)) == ["t01"]
    # "blue": 1/3 with "kind of blue" and "blue in green"
    assert ids(memory.retrieve("blue", 10)) == []


def test_scores_decrease_with_rank(memory):
    got = memory.retrieve("taylor swift love", 20)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
    assert [c.rank for c in got] == list(range(1, len(got) + 1))


def test_learns_new_query_and_survives_restart(memory, tmp_path):
    assert memory.retrieve("breakup anthem", 5) == []
    memory.apply_event("Breakup  Anthem", "t02", "click")
    memory.apply_event("breakup anthem", "t02", "play")
    assert memory.score("breakup anthem", "t02") == pytest.approx(EVENT_WEIGHTS["click"] + EVENT_WEIGHTS["play"])
    assert ids(memory.retrieve("breakup anthem", 5)) == ["t02"]
    memory.save(tmp_path / "saved")
    again = MemoryRetriever.load(tmp_path / "saved")
    assert ids(again.retrieve("breakup anthem", 5)) == ["t02"]
    assert again.score("breakup anthem", "t02") == pytest.approx(3.0)


def test_likes_reorder_seeded_results(memory):
    assert memory.retrieve("taylor swift", 1)[0].item_id == "t02"
    for _ in range(3):
        memory.apply_event("taylor swift", "t04", "like")
    assert ids(memory.retrieve("taylor swift", 2)) == ["t04", "t02"]


def test_negative_totals_are_dropped(memory):
    memory.update("breakup anthem", "t02", 1.0)
    assert memory.update("breakup anthem", "t02", -5.0) == 0.0
    assert memory.retrieve("breakup anthem", 5) == []
    for _ in range(4):  # skips wear a seeded answer away
        memory.apply_event("love story", "t01", "skip")
    assert memory.score("love story", "t01") == 0.0
    got = memory.retrieve("love story", 5)  # now only found through "love story taylor swift"
    assert ids(got) == ["t01"] and got[0].score < 1.0


def test_update_rejects_bad_input(memory):
    with pytest.raises(BadRequest, match="unknown item"):
        memory.update("love story", "nope", 1.0)
    with pytest.raises(BadRequest):
        memory.update("   ", "t01", 1.0)
    with pytest.raises(BadRequest):
        memory.update("love story", "t01", float("nan"))
    with pytest.raises(BadRequest, match="event type"):
        memory.apply_event("love story", "t01", "stare")


@pytest.mark.parametrize("text,k", [("", 5), ("   ", 5), ("x" * (MAX_QUERY_CHARS + 1), 5), ("love", 0), ("love", 1001)])
def test_bad_requests(memory, text, k):
    with pytest.raises(BadRequest):
        memory.retrieve(Query(text=text), k)


def test_missing_or_incomplete_index(tmp_path):
    with pytest.raises(IndexError_, match="ltrr index"):
        MemoryRetriever.load(tmp_path / "absent")
    MemoryRetriever.build(tiny_dataset(), tmp_path / "m")
    (tmp_path / "m" / "manifest.json").unlink()
    with pytest.raises(IndexError_, match="missing"):
        MemoryRetriever.load(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text(json.dumps({"strategy": "popularity", "format": 1}))
    with pytest.raises(IndexError_, match="not a memory index"):
        MemoryRetriever.load(tmp_path / "m")


def test_round_trip_keeps_fingerprint(tmp_path):
    data = tiny_dataset()
    MemoryRetriever.build(data, tmp_path / "m")
    assert MemoryRetriever.load(tmp_path / "m").fingerprint == data.fingerprint()


phrase = st.lists(st.sampled_from("a b c d e f g".split()), min_size=1, max_size=5).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(phrase, min_size=1, max_size=25), query=phrase)
def test_overlap_keys_equal_a_scan_of_every_key(keys, query):
    """The token postings (and their bound: a key must share MIN_OVERLAP of the query's words)
    find exactly the keys that comparing the query with every stored key finds."""
    memory = MemoryRetriever({key: {"i1": 1.0} for key in keys}, ["i1"])
    qt = set(query.split())
    want = set()
    for key in set(keys) - {query}:
        kt = set(key.split())
        jac = len(qt & kt) / len(qt | kt)
        if jac >= MIN_OVERLAP:
            want.add((key, jac))
    got = memory._overlap_keys(query)
    assert len(got) == len(set(got))
    assert {(k, round(j, 12)) for k, j in got} == {(k, round(j, 12)) for k, j in want}
