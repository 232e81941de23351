"""StructuredRetriever and QueryUnderstanding: exact, fuzzy, synonym and year understanding."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import BadRequest, IndexError_
from core.text import char_trigrams, normalize
from retrievers.base import MAX_QUERY_CHARS
from retrievers.structured import StructuredRetriever
from retrievers.understanding import FUZZY_THRESHOLD, QueryUnderstanding
from tests.helpers.catalogue import tiny_dataset

TAYLOR = ["t02", "t01", "t03", "t30", "t04"]  # Taylor Swift's tracks by popularity


@pytest.fixture(scope="module")
def structured(tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "structured"
    StructuredRetriever.build(tiny_dataset(), out)
    return StructuredRetriever.load(out)


def ids(cands):
    return [c.item_id for c in cands]


def test_misspelled_artist(structured):
    got = structured.retrieve("tayler swiftt", 10)
    assert ids(got) == TAYLOR
    assert all(c.features["constraints"] == 1.0 for c in got)


def test_title_and_artist_rank_both_constraints_first(structured):
    got = structured.retrieve("love story taylor swift", 10)
    assert ids(got) == ["t01", "t02", "t03", "t30", "t04"]
    assert got[0].features["constraints"] == 2.0 and 2.0 <= got[0].score < 3.0
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)


def test_categories_and_synonyms(structured):
    both = ["t05", "t08", "t18", "t25"]
    assert ids(structured.retrieve("chill jazz", 4)) == both
    assert ids(structured.retrieve("relaxing jazz", 4)) == both


def test_year_filters_and_relaxes(structured):
    assert ids(structured.retrieve("90s metal", 10)) == ["t16", "t17"]
    assert ids(structured.retrieve("metal from the 80's", 10)) == ["t16", "t17"]  # no 80s metal: relaxed
    assert ids(structured.retrieve("jazz 1959", 3)) == ["t05", "t18", "t06"]
    assert ids(structured.retrieve("1959", 10)) == ["t05", "t18", "t06"]  # only a year


def test_abstains_when_nothing_understood(structured):
    assert structured.retrieve("qwzx blorf", 10) == []


def test_parse_details():
    qu = QueryUnderstanding.from_dataset(tiny_dataset())
    p = qu.parse("daft pank one more tim 1990s")
    assert [(m.field, m.value, m.start, m.end, m.kind) for m in p.matches] == [
        ("artist", "daft punk", 0, 2, "fuzzy"), ("title", "one more time", 2, 5, "fuzzy")]
    assert [(y.lo, y.hi) for y in p.years] == [(1990, 1999)]
    assert p.fields() == {"artist", "title", "year"}
    assert [(y.lo, y.hi) for y in qu.parse("80's").years] == [(1980, 1989)]
    assert [(y.lo, y.hi) for y in qu.parse("90s").years] == [(1990, 1999)]
    p = qu.parse("love story by taylor swift remix")
    assert {(m.field, m.value, m.score) for m in p.matches} == {("title", "love story", 1.0),
                                                                 ("artist", "taylor swift", 1.0)}
    assert p.free_terms == ("remix",)
    assert qu.parse("love songs").matches[0].value == "romantic"  # synonym table
    assert qu.fuzzy("qqqq") is None


def brute_force_fuzzy(values: list[str], text: str) -> tuple[str, float] | None:
    """fuzzy()'s specification: Dice of character trigrams against every value; best by
    similarity, then closest trigram count, then value."""
    grams = char_trigrams(text)
    scored = []
    for value in sorted({normalize(v) for v in values} - {""}):
        vg = char_trigrams(value)
        dice = 2 * len(grams & vg) / (len(grams) + len(vg))
        if dice >= FUZZY_THRESHOLD - 1e-12:
            scored.append((-dice, abs(len(vg) - len(grams)), value))
    return (min(scored)[2], -min(scored)[0]) if scored else None


words = st.text(alphabet="abcdeklmnorst ", min_size=1, max_size=14)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(words, min_size=1, max_size=30), text=words)
def test_fuzzy_equals_a_scan_of_every_value(values, text):
    """The trigram index (and its bound: a value must share a third of the text's trigrams
    to reach Dice 0.5) finds exactly what comparing the text with every value finds."""
    qu = QueryUnderstanding({"title": values})
    text = normalize(text)
    got, want = qu.fuzzy(text), brute_force_fuzzy(values, text)
    assert (got is None) == (want is None)
    if got is not None:
        assert got[0] == want[0] and got[1] == pytest.approx(want[1])


def test_understanding_is_exposed(structured):
    assert structured.understanding.parse("Metallica").fields() == {"artist", "album"}


def test_round_trip(tmp_path, structured):
    StructuredRetriever.build(tiny_dataset(), tmp_path / "s")
    again = StructuredRetriever.load(tmp_path / "s")
    for q in ["tayler swiftt", "chill jazz", "1959"]:
        assert [(c.item_id, c.score) for c in again.retrieve(q, 10)] == \
               [(c.item_id, c.score) for c in structured.retrieve(q, 10)]


@pytest.mark.parametrize("text,k", [("", 5), ("x" * (MAX_QUERY_CHARS + 1), 5), ("jazz", 0), ("jazz", -1)])
def test_bad_requests(structured, text, k):
    with pytest.raises(BadRequest):
        structured.retrieve(text, k)


def test_missing_index(tmp_path):
    with pytest.raises(IndexError_):
        StructuredRetriever.load(tmp_path / "absent")
    StructuredRetriever.build(tiny_dataset(), tmp_path / "s")
    (tmp_path / "s" / "postings.json").write_text("{not json")
    with pytest.raises(IndexError_, match="unreadable"):
        StructuredRetriever.load(tmp_path / "s")
