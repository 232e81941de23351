"""Fusion of several strategies' candidate lists: the union with provenance, and
reciprocal-rank fusion (Cormack et al., 2009), score(d) = sum over lists of 1 / (k + rank).

The one definition of both. The serve path ranks `union(...)`; before a ranker model
exists the fallback ranker orders it by `rrf_sum` (the ranker's `rrf` feature), and
offline evaluation's `rrf` baseline is `rrf(...)`, the classic static way to combine
retrievers that ltrr's learned plans are compared against.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.records import Candidate, Hit

RRF_K = 60


def rrf_weight(rank: float | np.ndarray, rrf_k: int = RRF_K) -> float | np.ndarray:
    """What one list contributes to an item at `rank` (1-based): 1 / (rrf_k + rank). Accepts
    an array of ranks too (the bench scores hundreds of plans in one vectorised pass)."""
    return 1.0 / (rrf_k + rank)


def rrf_sum(hits: Mapping[str, Hit], rrf_k: int = RRF_K) -> float:
    """Reciprocal-rank fusion score of one candidate: sum of rrf_weight over its hits."""
    return sum(rrf_weight(h.rank, rrf_k) for h in hits.values())


def union(results: Mapping[str, Sequence[Candidate]]) -> list[Candidate]:
    """Merge per-strategy candidate lists into one list of unique items with their provenance.

    Each candidate's `hits` maps every strategy that found the item to its hit there (the
    best rank if a list repeats an item). The union is ordered by RRF sum (k=60), ties by
    item id, so that its order is already a sensible ranking before the ranker runs and is
    the baseline the ranker is compared with."""
    merged: dict[str, dict[str, Hit]] = {}
    for strategy, cands in results.items():
        for c in cands:
            hits = merged.setdefault(c.item_id, {})
            for s, h in c.hits.items():
                name = strategy if len(c.hits) == 1 else s  # a strategy's own answer, or an earlier union
                old = hits.get(name)
                if old is None or h.rank < old.rank:
                    hits[name] = h
    order = sorted(merged.items(), key=lambda kv: (-rrf_sum(kv[1]), kv[0]))
    return [Candidate(item_id, hits) for item_id, hits in order]


def rrf(lists: Sequence[Sequence[Candidate]], k: int, rrf_k: int = RRF_K, name: str = "rrf") -> list[Candidate]:
    """Fuse ranked candidate lists into one list of at most k candidates, found by `name`."""
    scores: dict[str, float] = {}
    for cands in lists:
        for c in cands:
            best = min(h.rank for h in c.hits.values())
            scores[c.item_id] = scores.get(c.item_id, 0.0) + rrf_weight(best, rrf_k)
    order = sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:k]
    return [Candidate.of(name, i, r, s) for r, (i, s) in enumerate(order, 1)]
