"""Popularity retrieval: the most popular items, globally or within a category.

A strong baseline for short and vague queries ("jazz", "chill jazz", "top songs"),
and the fallback when no other strategy has anything to say. Which list is used:
  1. a category named in the request context, {"genre": "jazz"} (or {"category": "jazz"}
     for any category field);
  2. else category values found in the normalized query text ("jazz" in "chill jazz");
  3. else the global list.
With several categories, items in all of them come first, then items in any of them,
each group by popularity. Scores are the item popularity (catalogue prior plus
click-based counts from `update_counts`); ties, e.g. BEIR data without popularity,
are broken by item id.
"""
from __future__ import annotations

import heapq
import math
import threading
from itertools import islice
from pathlib import Path

from core.errors import BadRequest, IndexError_
from core.model import Dataset
from core.records import Candidate
from core.text import ngrams, normalize
from retrievers.base import Query, Retriever
from retrievers.storage import read_json, read_manifest, write_json, write_manifest

FORMAT = 1
_GLOBAL: tuple[str, ...] = ()  # key of the global list; category lists are (field, value),
_ANY = "*"                      # or (_ANY, value) for a value in any category field


class PopularityRetriever(Retriever):
    """Global and per-category popularity lists, kept sorted best first."""

    name = "popularity"

    def __init__(self, base: dict[str, float], categories: dict[str, dict[str, list[str]]],
                 counts: dict[str, float] | None = None, fingerprint: str = "") -> None:
        self.fingerprint = fingerprint
        self._base = {i: float(p) for i, p in base.items()}
        self._counts = {i: float(c) for i, c in (counts or {}).items() if i in self._base and c}
        self._pop = {i: max(0.0, p + self._counts.get(i, 0.0)) for i, p in self._base.items()}
        self._categories = categories
        self._lists: dict[tuple[str, ...], list[str]] = {_GLOBAL: list(self._base)}
        self._item_lists: dict[str, list[tuple[str, ...]]] = {i: [_GLOBAL] for i in self._base}
        by_value: dict[str, set[str]] = {}
        for field, values in categories.items():
            for value, ids in values.items():
                members = [i for i in dict.fromkeys(ids) if i in self._base]
                self._add_list((field, value), members)
                by_value.setdefault(value, set()).update(members)
        for value, members in by_value.items():
            self._add_list((_ANY, value), sorted(members))
        self._sets = {key: frozenset(ids) for key, ids in self._lists.items() if key != _GLOBAL}
        self._max_words = max((len(v.split()) for v in by_value), default=1)
        self._dirty: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()
        for ids in self._lists.values():
            ids.sort(key=self._order)

    def _add_list(self, key: tuple[str, ...], members: list[str]) -> None:
        self._lists[key] = members
        for i in members:
            self._item_lists[i].append(key)

    def _order(self, item_id: str) -> tuple[float, str]:
        return (-self._pop[item_id], item_id)

    def _sorted(self, key: tuple[str, ...]) -> list[str]:
        """The list `key`, re-sorted first if popularity changed since (timsort on a
        nearly sorted list is linear)."""
        if key in self._dirty:
            self._lists[key].sort(key=self._order)
            self._dirty.discard(key)
        return self._lists[key]

    # -- build / persist ------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path) -> None:
        categories: dict[str, dict[str, list[str]]] = {}
        for field in dataset.schema.category_fields:
            values: dict[str, list[str]] = {}
            for item in dataset.items:
                value = normalize(item.fields.get(field, "") or "")
                if value:
                    values.setdefault(value, []).append(item.id)
            categories[field] = values
        base = {item.id: max(0.0, item.popularity) for item in dataset.items}
        cls(base, categories, None, dataset.fingerprint()).save(out_dir)

    def save(self, out_dir: Path) -> None:
        """Write the catalogue prior, the category members and the learned counts; each
        file is replaced atomically and the manifest is written last."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "popularity.json", {"popularity": self._base, "categories": self._categories})
        write_json(out / "counts.json", dict(self._counts))
        write_manifest(out, self.name, FORMAT, self.fingerprint, n_items=len(self._base))

    @classmethod
    def load(cls, out_dir: Path) -> PopularityRetriever:
        out = Path(out_dir)
        manifest = read_manifest(out, cls.name, FORMAT)
        data = read_json(out / "popularity.json")
        counts = read_json(out / "counts.json")
        try:
            return cls(data["popularity"], data["categories"], counts, manifest.get("fingerprint", ""))
        except (KeyError, TypeError, AttributeError) as exc:
            raise IndexError_(f"popularity index at {out} is malformed ({exc}); rebuild it") from None

    # -- learning -------------------------------------------------------------------
    def update_counts(self, item_id: str, weight: float) -> float:
        """Add click-based popularity to an item (the total never goes below 0); returns it."""
        if item_id not in self._base:
            raise BadRequest(f"unknown item id {item_id!r}: it is not in the catalogue")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise BadRequest(f"weight must be a finite number, got {weight!r}")
        with self._lock:
            count = max(self._counts.get(item_id, 0.0) + float(weight), -self._base[item_id])
            self._counts[item_id] = count
            self._pop[item_id] = self._base[item_id] + count
            self._dirty.update(self._item_lists[item_id])
            return self._pop[item_id]

    def popularity(self, item_id: str) -> float:
        """The current popularity of an item (0 for unknown ids)."""
        return self._pop.get(item_id, 0.0)

    # -- retrieval ------------------------------------------------------------------
    def categories_in(self, query: Query) -> list[tuple[str, ...]]:
        """The category lists a query selects: context first, then values in its text."""
        keys: list[tuple[str, ...]] = []
        for ctx_key, raw in (query.context or {}).items():
            if not isinstance(raw, (str, int)):
                continue
            value = normalize(str(raw))
            key = (_ANY, value) if ctx_key == "category" else (str(ctx_key), value)
            if ctx_key in self._categories or ctx_key == "category":
                if key in self._lists and key not in keys:
                    keys.append(key)
        if keys:
            return keys
        words = normalize(query.text).split()
        covered = [False] * len(words)
        for start, end, gram in ngrams(words, self._max_words):  # longest first
            key = (_ANY, gram)
            if key in self._lists and not any(covered[start:end]):
                covered[start:end] = [True] * (end - start)
                if key not in keys:
                    keys.append(key)
        return keys

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        keys = self.categories_in(query)
        with self._lock:
            if len(keys) <= 1:
                ids = self._sorted(keys[0] if keys else _GLOBAL)[:k]
            else:
                lists = [self._sorted(key) for key in keys]
                sets = [self._sets[key] for key in keys]
                shortest = min(lists, key=len)
                ids = list(islice((i for i in shortest if all(i in s for s in sets)), k))
                chosen = set(ids)
                for i in heapq.merge(*lists, key=self._order):  # then items in any category
                    if len(ids) >= k:
                        break
                    if i not in chosen:
                        chosen.add(i)
                        ids.append(i)
            return [Candidate.of(self.name, i, r, self._pop[i])
                    for r, i in enumerate(ids, 1)]
