"""The data model every part of ltrr shares: items, queries, qrels and a dataset.

A dataset is a catalogue of items plus query sets with graded relevance judgments
(qrels) per split. Retrievers index items; evaluation and the click simulator read
queries and qrels. Items carry free-text fields (for BM25 and embeddings),
categorical fields (for query understanding and per-category popularity) and
numeric attributes (popularity, year).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import DatasetError

if TYPE_CHECKING:
    from core.entities import Entity

__all__ = ["Dataset", "DatasetError", "Item", "Qrels", "QuerySet", "Schema", "catalogue_fingerprint"]


@dataclass(slots=True)
class Item:
    """One retrievable entity: a track, a paper abstract, a product.

    `fields` holds display and text fields (title, text, artist, album, genre, ...);
    `popularity` is a non-negative prior (0 when the data has none);
    `year` is a release year when the data has one.
    """

    id: str
    fields: dict[str, str]
    popularity: float = 0.0
    year: int | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "fields": self.fields, "popularity": self.popularity, "year": self.year}

    @staticmethod
    def from_json(row: dict) -> Item:
        return Item(id=str(row["id"]), fields=dict(row["fields"]), popularity=float(row.get("popularity") or 0.0),
                    year=row.get("year"))


@dataclass(slots=True)
class Schema:
    """Which item fields play which role.

    text_fields: searchable text, with a BM25 boost each.
    category_fields: categorical fields (genre, mood...) used for per-category popularity
        and for query understanding.
    entity_fields: fields whose values users type as queries (title, artist, album);
        they seed the memory index and the query-understanding dictionary.
    dense_fields: which fields, in order, make the text that is embedded.
    lexical_mode: "flat" puts all text fields in one BM25 field; "multifield" keeps
        one Lucene field per text field and searches them with their boosts.
    entity_types: entities derived from item fields, type -> [name field, qualifier
        fields...], e.g. {"artist": ["artist"], "album": ["album", "artist"]} (see core.entities).
    """

    text_fields: dict[str, float]
    category_fields: list[str] = field(default_factory=list)
    entity_fields: list[str] = field(default_factory=list)
    dense_fields: list[str] = field(default_factory=list)
    lexical_mode: str = "multifield"
    entity_types: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"text_fields": self.text_fields, "category_fields": self.category_fields,
                "entity_fields": self.entity_fields, "dense_fields": self.dense_fields,
                "lexical_mode": self.lexical_mode, "entity_types": self.entity_types}

    @staticmethod
    def from_json(row: dict) -> Schema:
        return Schema(text_fields=dict(row["text_fields"]), category_fields=list(row.get("category_fields", [])),
                      entity_fields=list(row.get("entity_fields", [])), dense_fields=list(row.get("dense_fields", [])),
                      lexical_mode=row.get("lexical_mode", "multifield"),
                      entity_types={k: list(v) for k, v in (row.get("entity_types") or {}).items()})


Qrels = dict[str, dict[str, int]]  # query id -> item id -> relevance grade (>0 is relevant)


@dataclass(slots=True)
class QuerySet:
    """The queries of one split and their judgments. `intents` is optional metadata per query."""

    queries: dict[str, str]
    qrels: Qrels
    intents: dict[str, str] = field(default_factory=dict)

    def judged(self) -> dict[str, str]:
        """Queries that have at least one relevant item: the ones metrics are computed on."""
        return {qid: q for qid, q in self.queries.items() if any(g > 0 for g in self.qrels.get(qid, {}).values())}


@dataclass(slots=True)
class Dataset:
    """A catalogue and its query splits. `spec` is how it was named (a path or builtin:NAME).
    `entities` lists the entities whose membership is no item field (Spotify's playlists);
    those derived from fields come from `schema.entity_types` (see core.entities)."""

    name: str
    spec: str
    items: list[Item]
    schema: Schema
    splits: dict[str, QuerySet] = field(default_factory=dict)
    entities: list[Entity] = field(default_factory=list)

    def split(self, name: str) -> QuerySet:
        if name not in self.splits:
            have = ", ".join(sorted(self.splits)) or "none"
            raise DatasetError(f"dataset {self.name!r} has no split {name!r} (it has: {have})")
        return self.splits[name]

    def fingerprint(self) -> str:
        """A content hash of the catalogue: indexes remember it, so that an index is never
        mixed up with, or overwritten by, one built from other data."""
        return catalogue_fingerprint(self.items)


def catalogue_fingerprint(items: Iterable[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(it.to_json(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
