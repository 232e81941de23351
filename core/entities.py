"""Entities beside the items: the artists, albums and playlists a track belongs to.

Items are what ltrr retrieves and ranks (tracks, papers, products). Entities are what
they belong to, shown beside the ranked items ("related entities") and as a card when
the query names one. Two kinds:

- derived from item fields, declared in `Schema.entity_types` as type -> fields: the
  first field is the entity's name, the others qualify its identity. Music-demo declares
  `{"artist": ["artist"], "album": ["album", "artist"]}`: every distinct artist value is
  one artist, and an album is one (album, artist) pair, so two artists' albums that share
  a name stay two albums;
- explicit, listed by the data's loader (`Dataset.entities`) when membership is not a
  field: the Spotify playlists, each holding the tracks listed in it.

An entity's id is `type:normalized name[|normalized qualifier...]`; its items are listed
most popular first.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.model import Item
from core.text import normalize

__all__ = ["Entity", "derive_entities", "entity_id"]


@dataclass(slots=True)
class Entity:
    """One artist, album, playlist...: a named group of items."""

    id: str
    type: str
    name: str
    items: list[str]
    fields: dict[str, str] = field(default_factory=dict)  # qualifiers, e.g. an album's artist
    popularity: float = 0.0                                # the sum of its items' popularity

    def to_json(self) -> dict:
        return {"id": self.id, "type": self.type, "name": self.name, "items": self.items, "fields": self.fields,
                "popularity": self.popularity}

    @staticmethod
    def from_json(row: dict) -> Entity:
        return Entity(id=str(row["id"]), type=str(row["type"]), name=str(row["name"]),
                      items=[str(i) for i in row["items"]], fields=dict(row.get("fields") or {}),
                      popularity=float(row.get("popularity") or 0.0))


def entity_id(kind: str, name: str, *qualifiers: str) -> str:
    """`type:name|qualifier...`, normalized; a name of symbols only (an emoji playlist) is kept as written."""
    return f"{kind}:" + "|".join(normalize(v) or v.strip().lower() for v in (name, *qualifiers))


def derive_entities(items: Iterable[Item], entity_types: Mapping[str, list[str]]) -> list[Entity]:
    """The entities that `entity_types` (type -> [name field, qualifier fields...]) defines
    over `items`. An item with an empty name field belongs to no entity of that type."""
    items = list(items)
    pop = {it.id: it.popularity for it in items}
    out: dict[str, Entity] = {}
    for kind, fields in entity_types.items():
        if not fields:
            continue
        name_field, qualifiers = fields[0], fields[1:]
        for it in items:
            name = (it.fields.get(name_field) or "").strip()
            if not name:
                continue
            quals = [(it.fields.get(q) or "").strip() for q in qualifiers]
            eid = entity_id(kind, name, *quals)
            ent = out.get(eid)
            if ent is None:
                ent = out[eid] = Entity(eid, kind, name, [], {q: v for q, v in zip(qualifiers, quals) if v})
            ent.items.append(it.id)
    for ent in out.values():
        ent.items.sort(key=lambda i: (-pop.get(i, 0.0), i))
        ent.popularity = round(sum(pop.get(i, 0.0) for i in ent.items), 4)
    return list(out.values())
