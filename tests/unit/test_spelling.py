"""Speller (typo tolerance for single words) and the structured strategy's word-level matches."""
from __future__ import annotations

import pytest

from retrievers.spelling import Speller, edit_distance
from retrievers.structured import StructuredRetriever
from tests.helpers.catalogue import tiny_dataset


def test_edit_distance_counts_swaps_as_one():
    assert edit_distance("taylor", "tayler") == 1
    assert edit_distance("ab", "ba") == 1
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("a", "abcdefgh", cap=2) == 3  # past the cap: cap + 1


def test_corrects_unknown_words_only():
    sp = Speller({"taylor": 5, "tailor": 1, "love": 9, "story": 3})
    assert sp.correct("tayler") == ("taylor", 1)   # closer than "tailor" (2), and more frequent
    assert sp.correct("taylor") is None            # known
    assert sp.correct("lov") is None               # too short to correct
    assert sp.correct("zzzzzz") is None            # nothing close
    assert sp.correct("1989") is None              # numbers are never corrected
    assert Speller({"cart": 1, "card": 1}).correct("carx") == ("card", 1)  # ties: alphabetical


@pytest.fixture(scope="module")
def structured(tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "structured"
    StructuredRetriever.build(tiny_dataset(), out)
    return StructuredRetriever.load(out)


def test_a_misspelled_first_name_and_a_title_word_meet_two_constraints(structured):
    got = structured.retrieve("tayler love", 10)
    # Taylor Swift's love songs: artist word (corrected) + the title word "love" or the mood it means
    assert [c.item_id for c in got[:2]] == ["t01", "t30"]  # Love Story, Red (romantic)
    assert [c.features["constraints"] for c in got[:3]] == [2.0, 2.0, 1.0]


def test_a_known_word_beside_understood_ones_adds_no_constraint(structured):
    # "story" is a title word, but "chill jazz" is understood: the jazz-and-chill items still lead
    assert [c.item_id for c in structured.retrieve("chill jazz story", 4)] == ["t05", "t08", "t18", "t25"]


def test_word_matches_when_nothing_else_is_understood(structured):
    got = structured.retrieve("velvet", 5)  # exact album "Velvet" and the title word of "Velvet Morning"
    assert {"t24", "t25"} <= {c.item_id for c in got}
    assert structured.retrieve("qwzx blorf", 10) == []
