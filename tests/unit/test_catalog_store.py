"""The memory-mapped catalogue (retrievers/catalog_store.py) answers as the loaded dict does."""
from __future__ import annotations

from core.model import Item
from ingest.music_demo import generate
from retrievers.catalog_store import MappedCatalog, has_catalog, write_catalog


def test_mapped_catalogue_equals_the_items(tmp_path):
    items = generate(n_tracks=300, n_artists=25, n_train=10, n_test=10).items
    items.append(Item(id="é/ü 1", fields={"title": "Ünïcode “quotes”"}, popularity=0.0, year=None))
    write_catalog(items, tmp_path)
    assert has_catalog(tmp_path)
    mapped = MappedCatalog(tmp_path)
    assert len(mapped) == len(items) and list(mapped) == [it.id for it in items]
    assert all(mapped[it.id] == it for it in items)
    assert [it.id for it in mapped.values()] == [it.id for it in items]
    assert mapped[items[3].id] is mapped[items[3].id]  # hot items keep their identity (feature caches)
    for missing in ("t99999", "", "x" * 500, 7):
        assert missing not in mapped and mapped.get(missing) is None


def test_empty_catalogue(tmp_path):
    write_catalog([], tmp_path)
    mapped = MappedCatalog(tmp_path)
    assert len(mapped) == 0 and mapped.get("a") is None and list(mapped) == []
