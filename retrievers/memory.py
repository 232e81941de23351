"""Memory retrieval: a learned table of normalized query -> item -> score.

Users repeat queries, and what they clicked for a query last time is the best answer
for it next time. This strategy remembers that. At cold start there are no clicks, so
the table is seeded with the queries users are likely to type for each item: its entity
field values (title, artist, album) and "title artist". Popular items get a slightly
larger seed, so an artist query lists the artist's hits first.

Retrieval has two tiers, so scores always decrease with rank:
  * exact: the normalized query is a stored key; score = 1 + s/(1+s), in [1, 2);
  * overlap: stored keys sharing words with the query (Jaccard >= 0.5), so
    "love story taylor" still finds "love story"; score = jaccard * s/(1+s), in [0, 1).
Clicks, plays, likes and skips move scores (`apply_event`); `save` makes them durable.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.errors import BadRequest, IndexError_
from core.events import EVENT_WEIGHTS
from core.model import Dataset
from core.records import Candidate
from core.text import normalize
from retrievers.base import MAX_QUERY_CHARS, Query, Retriever, ranked
from retrievers.storage import read_json, read_manifest, write_json, write_manifest

TITLE_SEED = 1.0  # the primary entity field (title) and "title artist"
OTHER_SEED = 0.5  # other entity fields (artist, album): one key maps to many items
TITLE_LIKE = frozenset({"title", "name"})
MIN_OVERLAP = 0.5  # keys with a lower Jaccard overlap with the query are ignored
FORMAT = 1


def _seed_table(dataset: Dataset) -> dict[str, dict[str, float]]:
    """Predicted queries for each item, weighted by field and (a little) by popularity."""
    fields = dataset.schema.entity_fields
    table: dict[str, dict[str, float]] = {}
    if not fields:
        return table
    primary = fields[0]
    secondary = fields[1] if len(fields) > 1 else None
    for item in dataset.items:
        boost = 1.0 + math.log1p(max(item.popularity, 0.0)) / 10.0
        keys: dict[str, float] = {}
        for f in fields:
            key = normalize(item.fields.get(f, "") or "")
            seed = TITLE_SEED if (f == primary or f in TITLE_LIKE) else OTHER_SEED
            if key:
                keys[key] = max(keys.get(key, 0.0), seed)
        if secondary:
            combo = normalize(f"{item.fields.get(primary, '') or ''} {item.fields.get(secondary, '') or ''}")
            if combo:
                keys[combo] = max(keys.get(combo, 0.0), TITLE_SEED)
        for key, seed in keys.items():
            table.setdefault(key, {})[item.id] = seed * boost
    return table


class MemoryRetriever(Retriever):
    """Query -> item scores learned from feedback, seeded with predicted queries."""

    name = "memory"

    def __init__(self, table: dict[str, dict[str, float]], item_ids: Iterable[str], fingerprint: str = "") -> None:
        self.fingerprint = fingerprint
        self._item_ids = list(item_ids)
        self._known = frozenset(self._item_ids)
        self._table: dict[str, dict[str, float]] = {}
        for key, scores in table.items():
            kept = {i: float(s) for i, s in scores.items() if s > 0 and i in self._known}
            if key and kept:
                self._table[key] = kept
        # Static token index over the keys known at load time, as numpy postings, so that
        # overlap counts come from one bincount; keys first seen later go to a small
        # dynamic index. Dropped keys stay in the static index and are skipped.
        self._keys = sorted(self._table)
        self._key_id = {key: n for n, key in enumerate(self._keys)}
        postings: dict[str, list[int]] = {}
        lengths = []
        for n, key in enumerate(self._keys):
            toks = set(key.split())
            lengths.append(len(toks))
            for t in toks:
                postings.setdefault(t, []).append(n)
        self._key_len = np.asarray(lengths, dtype=np.int64)
        self._postings = {t: np.asarray(ix, dtype=np.int32) for t, ix in postings.items()}
        self._new_tokens: dict[str, set[str]] = {}  # token -> keys added since load
        self._new_keys: dict[str, frozenset[str]] = {}  # key added since load -> its tokens
        self._lock = threading.Lock()

    # -- build / persist ------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path) -> None:
        cls(_seed_table(dataset), (it.id for it in dataset.items), dataset.fingerprint()).save(out_dir)

    def save(self, out_dir: Path) -> None:
        """Write the whole state (seeds + learning) under out_dir. Each file is replaced
        atomically and the manifest is written last, so a directory without one is
        known to be incomplete, and an interrupted save keeps the previous state."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:  # copy under the lock, serialize outside it
            table = {key: dict(scores) for key, scores in self._table.items()}
        write_json(out / "memory.json", {"items": self._item_ids, "memory": table})
        write_manifest(out, self.name, FORMAT, self.fingerprint, n_items=len(self._item_ids),
                       n_keys=len(self._table))

    @classmethod
    def load(cls, out_dir: Path) -> MemoryRetriever:
        out = Path(out_dir)
        manifest = read_manifest(out, cls.name, FORMAT)
        state = read_json(out / "memory.json")
        try:
            return cls(state["memory"], state["items"], manifest.get("fingerprint", ""))
        except (KeyError, TypeError, AttributeError) as exc:
            raise IndexError_(f"memory index at {out} is malformed ({exc}); rebuild it") from None

    # -- retrieval ------------------------------------------------------------------
    def _index_key(self, key: str) -> None:
        if key in self._key_id or key in self._new_keys:
            return
        toks = frozenset(key.split())
        self._new_keys[key] = toks
        for t in toks:
            self._new_tokens.setdefault(t, set()).add(key)

    def _unindex_key(self, key: str) -> None:
        for t in self._new_keys.pop(key, ()):
            self._new_tokens[t].discard(key)

    def _overlap_keys(self, q: str) -> list[tuple[str, float]]:
        """Stored keys other than q with Jaccard(query words, key words) >= MIN_OVERLAP.
        A key sharing m of the query's nq words has Jaccard at most m / nq, so only keys
        sharing at least MIN_OVERLAP * nq words are scored (at a million tracks a common
        word is in hundreds of thousands of keys)."""
        qt = frozenset(q.split())
        nq = len(qt)
        out: list[tuple[str, float]] = []
        arrays = [self._postings[t] for t in qt if t in self._postings]
        need = max(1, math.ceil(MIN_OVERLAP * nq - 1e-9))
        if len(arrays) >= need:
            shared = np.bincount(np.concatenate(arrays))
            cand = np.flatnonzero(shared >= need)
            m = shared[cand]
            jac = m / (nq + self._key_len[cand] - m)
            keep = jac >= MIN_OVERLAP
            for n, j in zip(cand[keep].tolist(), jac[keep].tolist()):
                key = self._keys[n]
                if key != q and key in self._table:
                    out.append((key, j))
        seen: set[str] = set()
        for t in qt:
            for key in self._new_tokens.get(t, ()):
                if key not in seen and key != q:
                    seen.add(key)
                    toks = self._new_keys[key]
                    m = len(qt & toks)
                    jac = m / (nq + len(toks) - m)
                    if jac >= MIN_OVERLAP:
                        out.append((key, jac))
        return out

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        q = normalize(query.text)
        with self._lock:
            exact = {i: 1.0 + s / (1.0 + s) for i, s in self._table.get(q, {}).items()}
            fuzzy: dict[str, float] = {}
            if len(exact) < k:
                for key, jac in self._overlap_keys(q):
                    for i, s in self._table[key].items():
                        if i not in exact:
                            v = jac * s / (1.0 + s)
                            if v > fuzzy.get(i, 0.0):
                                fuzzy[i] = v
        return ranked(list(exact.items()) + list(fuzzy.items()), self.name, k)

    # -- learning -------------------------------------------------------------------
    def update(self, query_text: str, item_id: str, weight: float) -> float:
        """Add `weight` to the (normalized query, item) score and return the new score.
        Totals that fall to 0 or below are dropped. Raises BadRequest on bad input."""
        if not isinstance(query_text, str) or not normalize(query_text):
            raise BadRequest("query is empty")
        if len(query_text) > MAX_QUERY_CHARS:
            raise BadRequest(f"query is {len(query_text)} characters long; the limit is {MAX_QUERY_CHARS}")
        if item_id not in self._known:
            raise BadRequest(f"unknown item id {item_id!r}: it is not in the catalogue")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise BadRequest(f"weight must be a finite number, got {weight!r}")
        key = normalize(query_text)
        with self._lock:
            scores = self._table.get(key)
            total = (scores or {}).get(item_id, 0.0) + float(weight)
            if total > 0:
                if scores is None:
                    scores = self._table[key] = {}
                    self._index_key(key)
                scores[item_id] = total
                return total
            if scores is not None:
                scores.pop(item_id, None)
                if not scores:
                    del self._table[key]
                    self._unindex_key(key)
            return 0.0

    def apply_event(self, query_text: str, item_id: str, event_type: str) -> float:
        """Apply one feedback event ("click", "play", "like", "skip") with EVENT_WEIGHTS."""
        if event_type not in EVENT_WEIGHTS:
            raise BadRequest(f"unknown event type {event_type!r}; expected one of {sorted(EVENT_WEIGHTS)}")
        return self.update(query_text, item_id, EVENT_WEIGHTS[event_type])

    def score(self, query_text: str, item_id: str) -> float:
        """The stored score of (normalized query, item), 0 when there is none."""
        return self._table.get(normalize(query_text), {}).get(item_id, 0.0)
