"""ExploreRetriever: a deterministic, seeded sample of long-tail and new items."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import BadRequest, IndexError_
from core.model import Dataset, Item
from retrievers.base import MAX_QUERY_CHARS, Query
from retrievers.explore import ExploreRetriever, exploration_pool
from tests.helpers.catalogue import SCHEMA, tiny_dataset

# popularity < median (60), or released in 2023-2024 (t31 is popular but new)
POOL = ["t06", "t08", "t14", "t15", "t18", "t19", "t20", "t21", "t22", "t23", "t24", "t25", "t26",
        "t28", "t29", "t31"]


@pytest.fixture()
def explore(tmp_path):
    ExploreRetriever.build(tiny_dataset(), tmp_path / "explore", seed=7)
    return ExploreRetriever.load(tmp_path / "explore")


def ids(cands):
    return [c.item_id for c in cands]


def test_pool_is_long_tail_and_new():
    assert exploration_pool(tiny_dataset()) == POOL


def test_only_pool_items_never_head(explore):
    head = {"t01", "t02", "t03", "t09", "t12", "t13"}
    for q in ["taylor swift", "love", "jazz", "shake it off"]:
        for rnd in range(5):
            got = ids(explore.retrieve(Query(q, context={"explore_round": rnd}), 8))
            assert len(got) == 8 and len(set(got)) == 8
            assert set(got) <= set(POOL) and not set(got) & head


def test_deterministic_and_seeded(explore, tmp_path):
    first = ids(explore.retrieve("chill", 6))
    assert ids(explore.retrieve("Chill!", 6)) == first  # same normalized query
    assert ids(ExploreRetriever.load(tmp_path / "explore").retrieve("chill", 6)) == first
    other_round = ids(explore.retrieve(Query("chill", context={"explore_round": 1}), 6))
    other_seed = ids(ExploreRetriever.load(tmp_path / "explore", seed=8).retrieve("chill", 6))
    assert other_round != first and other_seed != first


def test_half_shares_a_query_word(explore):
    chill = {"t08", "t15", "t18", "t19", "t21", "t25", "t29"}  # pool items with mood chill
    got = explore.retrieve("chill", 5)
    assert set(ids(got)[:3]) <= chill  # ceil(5/2) = 3
    midnight = ids(explore.retrieve("midnight", 4))
    assert midnight[0] == "t21"  # the only pool item with the word; t27's album is head
    assert len(set(midnight)) == 4
    assert [c.score for c in got] == [1.0, 0.5, pytest.approx(1 / 3), 0.25, 0.2]


def test_k_larger_than_pool(explore):
    assert sorted(ids(explore.retrieve("anything", 100))) == POOL


def test_no_popularity_means_whole_catalogue(tmp_path):
    data = tiny_dataset()
    flat = Dataset("flat", "tests:flat", [Item(i.id, i.fields, 0.0, None) for i in data.items], SCHEMA)
    assert exploration_pool(flat) == sorted(i.id for i in data.items)
    ExploreRetriever.build(flat, tmp_path / "flat")
    got = ids(ExploreRetriever.load(tmp_path / "flat").retrieve("taylor swift", 4))
    assert len(got) == 4 and len(set(got) & {"t01", "t02", "t03", "t04", "t30"}) >= math.ceil(4 / 2)


@pytest.mark.parametrize("query,k", [(Query(""), 5), (Query("x" * (MAX_QUERY_CHARS + 1)), 5), (Query("jazz"), 0),
                                     (Query("jazz", context={"explore_round": "x"}), 5)])
def test_bad_requests(explore, query, k):
    with pytest.raises(BadRequest):
        explore.retrieve(query, k)


def test_missing_index(tmp_path):
    with pytest.raises(IndexError_):
        ExploreRetriever.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexError_, match="missing"):
        ExploreRetriever.load(tmp_path / "empty")


@settings(max_examples=200, deadline=None)
@given(postings=st.lists(st.sets(st.integers(0, 49)), max_size=4))
def test_union_of_postings_is_sorted_and_complete(postings):
    """The items sharing a word with the query: every position of every posting, once, ascending."""
    explore = ExploreRetriever([f"i{n}" for n in range(50)], {})
    arrays = [np.asarray(sorted(p), dtype=np.int64) for p in postings]
    want = sorted(set().union(*postings)) if postings else []
    assert explore._union(arrays).tolist() == want
