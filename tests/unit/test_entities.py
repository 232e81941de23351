"""Entities: derived from item fields (core.entities), related to results and named by queries
(engine.entities)."""
from __future__ import annotations

import pytest

from core.entities import Entity, derive_entities, entity_id
from engine.entities import EntityIndex
from ingest.music_demo import generate
from tests.helpers.catalogue import tiny_dataset

TYPES = {"artist": ["artist"], "album": ["album", "artist"]}


@pytest.fixture(scope="module")
def tiny() -> EntityIndex:
    ds = tiny_dataset()
    playlist = Entity(entity_id("playlist", "Rainy Day"), "playlist", "Rainy Day", ["t05", "t19"])
    return EntityIndex(derive_entities(ds.items, TYPES) + [playlist])


def test_derived_entities_group_items_by_field_most_popular_first(tiny):
    swift = tiny.get("artist:taylor swift")
    assert swift.name == "Taylor Swift" and swift.items == ["t02", "t01", "t03", "t30", "t04"]
    album = tiny.get("album:1989|taylor swift")
    assert album.items == ["t02", "t03"] and album.fields == {"artist": "Taylor Swift"}
    assert swift.popularity == pytest.approx(95 + 98 + 90 + 80 + 85)


def test_related_entities_of_the_top_results(tiny):
    got = tiny.related(["t01", "t02", "t05"], limit=10)
    ids = [h.entity.id for h in got]
    assert ids[0] == "artist:taylor swift" and got[0].via == ("t01", "t02")
    assert got[0].score == pytest.approx(1 + 1 / 2)
    assert {"album:fearless|taylor swift", "album:1989|taylor swift", "artist:miles davis",
            "album:kind of blue|miles davis", "playlist:rainy day"} <= set(ids)
    assert tiny.related(["t01"], limit=0) == [] and len(tiny.related(["t01", "t05"], limit=2)) == 2


def test_cards_for_what_the_query_names(tiny):
    assert [h.entity.id for h in tiny.cards("love story taylor swift")] == ["artist:taylor swift"]
    assert tiny.cards("tayler swiftt")[0].entity.id == "artist:taylor swift"  # fuzzy name
    assert [h.entity.type for h in tiny.cards("rainy day")] == ["playlist"]
    assert tiny.cards("qwzx blorf") == []


def test_music_demo_artist_plus_title_query():
    ds = generate(n_tracks=600)
    index = EntityIndex(derive_entities(ds.items, ds.schema.entity_types))
    item = max(ds.items, key=lambda it: it.popularity)
    artist = entity_id("artist", item.fields["artist"])
    assert artist in [h.entity.id for h in index.cards(f"{item.fields['artist']} {item.fields['title']}")]
    assert index.related([item.id], limit=2)[0].entity.id in (artist, entity_id("album", item.fields["album"],
                                                                                   item.fields["artist"]))
