"""Related entities and entity cards for a search answer (no Ray here).

- related: the entities the top results belong to, each scored by the reciprocal ranks
  of its members among the top `depth` results (sum of 1/rank), so the artist of the
  first two results outranks the album of the fifth; ties go to the more popular entity.
- cards: the entities the query names, found by the query-understanding matcher
  (`retrievers.understanding`: exact n-grams, then fuzzy by character trigrams) over the
  entity names, so "taylor whitfeld kingdom love" names the artist Taylor Whitfield. A
  name shared by several entities (two artists' albums "Blue") gives the most popular.

Both are logged with the request (`EntityAnswer.logged`: each entity with the shown results
it was shown through), so /feedback can name them and learning can credit those results
(`core.credit`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.entities import Entity
from core.records import ShownEntity
from core.text import normalize
from retrievers.understanding import QueryUnderstanding

CARD_MIN_SCORE = 0.6   # fuzzy name matches below this similarity make no card ("tayler swiftt": 0.64)
CARD_ITEMS = 5


@dataclass(frozen=True, slots=True)
class EntityHit:
    """An entity in an answer: why it is there (`via`: the result item ids, or the query) and its score."""

    entity: Entity
    score: float
    via: tuple[str, ...]


@dataclass
class EntityAnswer:
    """The entities of one answer: cards for what the query names, related entities of the top
    results, and the result items shown (in order), which say what each was shown through."""

    cards: list[EntityHit] = field(default_factory=list)
    related: list[EntityHit] = field(default_factory=list)
    shown: Sequence[str] = ()

    def logged(self) -> list[ShownEntity]:
        """What the request log keeps: every entity shown and its `via`, the shown results it was
        shown through (a related entity's own `via`; for a card, the shown results that belong to it)."""
        out = []
        for hit in self.cards:
            members = set(hit.entity.items)
            out.append(ShownEntity(entity_id=hit.entity.id, role="card", via=[i for i in self.shown if i in members]))
        out += [ShownEntity(entity_id=h.entity.id, role="related", via=list(h.via)) for h in self.related]
        return out


class EntityIndex:
    """Entities by item and by name, for one catalogue."""

    def __init__(self, entities: Iterable[Entity]) -> None:
        self.entities = {e.id: e for e in entities}
        self.by_item: dict[str, list[str]] = {}
        names: dict[str, set[str]] = {}
        self._by_name: dict[tuple[str, str], list[str]] = {}
        for e in self.entities.values():
            for i in e.items:
                self.by_item.setdefault(i, []).append(e.id)
            names.setdefault(e.type, set()).add(e.name)
            self._by_name.setdefault((e.type, normalize(e.name)), []).append(e.id)
        for ids in self._by_name.values():
            ids.sort(key=lambda i: (-self.entities[i].popularity, i))
        self.understanding = QueryUnderstanding(names) if names else None

    def __len__(self) -> int:
        return len(self.entities)

    def get(self, entity_id: str) -> Entity | None:
        return self.entities.get(entity_id)

    def related(self, ranked_ids: Sequence[str], limit: int, depth: int = 10) -> list[EntityHit]:
        """Up to `limit` entities of the top `depth` results, best first (see the module docstring)."""
        if limit <= 0:
            return []
        score: dict[str, float] = {}
        via: dict[str, list[str]] = {}
        for rank, item_id in enumerate(ranked_ids[:depth], 1):
            for eid in self.by_item.get(item_id, ()):
                score[eid] = score.get(eid, 0.0) + 1.0 / rank
                via.setdefault(eid, []).append(item_id)
        order = sorted(score, key=lambda e: (-score[e], -self.entities[e].popularity, e))[:limit]
        return [EntityHit(self.entities[e], round(score[e], 4), tuple(via[e])) for e in order]

    def answer(self, query: str, shown: Sequence[str], limit: int) -> EntityAnswer:
        """Up to min(limit, 3) cards and `limit` related entities for a query and its shown results."""
        return EntityAnswer(self.cards(query, min(limit, 3)), self.related(shown, limit), list(shown))

    def cards(self, query: str, limit: int = 3) -> list[EntityHit]:
        """Entities the query names, best match first."""
        if self.understanding is None or limit <= 0:
            return []
        found: dict[str, float] = {}
        for m in self.understanding.parse(query).matches:
            if m.score < CARD_MIN_SCORE:
                continue
            ids = self._by_name.get((m.field, m.value))
            if ids and m.score > found.get(ids[0], 0.0):
                found[ids[0]] = m.score
        order = sorted(found, key=lambda e: (-found[e], -self.entities[e].popularity, e))[:limit]
        return [EntityHit(self.entities[e], round(found[e], 4), ("query",)) for e in order]
