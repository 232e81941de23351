"""Reciprocal-rank fusion (Cormack et al., 2009): score(d) = sum over lists of 1 / (k + rank).

The classic static way to combine retrievers, and the baseline ltrr's learned plans
are compared against.
"""
from __future__ import annotations

from retrievers.base import Candidate, ranked

RRF_K = 60


def rrf(lists: list[list[Candidate]], k: int, rrf_k: int = RRF_K, name: str = "rrf") -> list[Candidate]:
    """Fuse ranked candidate lists into one of at most k candidates."""
    scores: dict[str, float] = {}
    for cands in lists:
        for c in cands:
            scores[c.item_id] = scores.get(c.item_id, 0.0) + 1.0 / (rrf_k + c.rank)
    return ranked(list(scores.items()), name, k)
