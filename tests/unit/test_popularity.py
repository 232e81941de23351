"""PopularityRetriever: global and per-category lists, context and text categories, counts."""
from __future__ import annotations

import pytest

from core.errors import BadRequest, IndexError_
from core.model import Dataset, Item
from retrievers.base import MAX_QUERY_CHARS, Query
from retrievers.popularity import PopularityRetriever
from tests.helpers.catalogue import SCHEMA, tiny_dataset


@pytest.fixture()
def pop(tmp_path):
    PopularityRetriever.build(tiny_dataset(), tmp_path / "pop")
    return PopularityRetriever.load(tmp_path / "pop")


def ids(cands):
    return [c.item_id for c in cands]


def test_global_order_with_id_tiebreak(pop):
    got = pop.retrieve("top songs", 8)
    assert ids(got) == ["t02", "t01", "t12", "t09", "t03", "t13", "t11", "t30"]  # t11, t30 tie at 85
    assert [c.score for c in got][:3] == [98.0, 95.0, 93.0]


def test_context_category(pop):
    got = pop.retrieve(Query("anything", context={"genre": "Jazz"}), 10)
    assert ids(got) == ["t07", "t05", "t08", "t18", "t06", "t24", "t25"]
    assert ids(pop.retrieve(Query("x", context={"category": "metal"}), 10)) == ["t16", "t17"]


def test_context_wins_over_text_and_unknown_context_is_ignored(pop):
    assert ids(pop.retrieve(Query("metal", context={"genre": "folk"}), 10)) == ["t29", "t28"]
    assert ids(pop.retrieve(Query("metal", context={"genre": "polka"}), 10)) == ["t16", "t17"]


def test_category_in_text(pop):
    assert ids(pop.retrieve("best folk", 10)) == ["t29", "t28"]


def test_several_categories_intersection_first(pop):
    got = ids(pop.retrieve("chill jazz", 20))
    assert got == ["t05", "t08", "t18", "t25",  # jazz and chill
                   "t07", "t19", "t06", "t15", "t24", "t29", "t21"]  # jazz or chill
    assert ids(pop.retrieve("chill jazz", 3)) == ["t05", "t08", "t18"]


def test_update_counts_reorders_and_persists(pop, tmp_path):
    assert pop.update_counts("t25", 100) == pytest.approx(106.0)
    assert ids(pop.retrieve(Query("x", context={"genre": "jazz"}), 2)) == ["t25", "t07"]
    assert pop.retrieve("x", 1)[0].item_id == "t25"
    pop.update_counts("t02", -1000)  # never below zero
    assert pop.popularity("t02") == 0.0
    pop.save(tmp_path / "saved")
    again = PopularityRetriever.load(tmp_path / "saved")
    assert again.popularity("t25") == pytest.approx(106.0)
    assert ids(again.retrieve("jazz", 2)) == ["t25", "t07"]
    with pytest.raises(BadRequest):
        pop.update_counts("nope", 1)


def test_no_popularity_orders_by_id(tmp_path):
    data = tiny_dataset()
    flat = Dataset("flat", "tests:flat", [Item(i.id, i.fields, 0.0, i.year) for i in reversed(data.items)], SCHEMA)
    PopularityRetriever.build(flat, tmp_path / "flat")
    r = PopularityRetriever.load(tmp_path / "flat")
    assert ids(r.retrieve("whatever", 3)) == ["t01", "t02", "t03"]
    assert ids(r.retrieve("metal", 3)) == ["t16", "t17"]


@pytest.mark.parametrize("text,k", [("", 5), ("x" * (MAX_QUERY_CHARS + 1), 5), ("jazz", 0)])
def test_bad_requests(pop, text, k):
    with pytest.raises(BadRequest):
        pop.retrieve(text, k)


def test_missing_index(tmp_path):
    with pytest.raises(IndexError_):
        PopularityRetriever.load(tmp_path / "absent")
    PopularityRetriever.build(tiny_dataset(), tmp_path / "p")
    (tmp_path / "p" / "counts.json").unlink()
    with pytest.raises(IndexError_, match="missing"):
        PopularityRetriever.load(tmp_path / "p")
