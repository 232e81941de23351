"""Scatter-gather over the shards of one strategy (no Ray here).

A sharded strategy (`retrievers/shards.py`) is served by one deployment per shard. The
orchestrator calls every shard with the same query and k concurrently, each with its own
timeout, and merges: the union of the shards' lists sorted by score (ties by item id, as
`retrievers.base.ranked` orders an unsharded list), cut at k and ranked 1..k again, every
candidate under the strategy's own name. Shards of an exact strategy score as the
unsharded index would (global BM25 statistics, exact inner products), so the merged list
is the unsharded list.

A shard that fails or times out leaves its items out: the answer is the other shards'
merge, marked partial (`Partial.missing`), and the pipeline names the missing shards in
`failed_strategies` (`lexical/shard1`), so the request is degraded, not failed. Only when
every shard fails does the strategy fail (raising the first shard's error, so an
`Overloaded` stays a shed rather than a breaker trip).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from core.records import Candidate
from retrievers.base import Query, ranked

ShardFn = Callable[[Query, int], Awaitable[list[Candidate]]]


class Partial(list):
    """A merged candidate list that lacks the shards in `missing` (they failed or timed out)."""

    missing: tuple[int, ...] = ()


def shard_label(strategy: str, shard: int) -> str:
    return f"{strategy}/shard{shard}"


def merge(lists: Sequence[Sequence[Candidate]], k: int, strategy: str) -> list[Candidate]:
    """The top k of the shards' candidates by score, ranked 1..k (an item in two lists keeps its best score)."""
    best: dict[str, float] = {}
    for cands in lists:
        for c in cands:
            if c.item_id not in best or c.score > best[c.item_id]:
                best[c.item_id] = c.score
    return ranked(list(best.items()), strategy, k)


def scatter_gather(strategy: str, shards: Sequence[ShardFn], timeout_s: float) -> ShardFn:
    """One retrieve function over `shards` (see the module docstring)."""

    async def one(fn: ShardFn, query: Query, k: int) -> list[Candidate]:
        return await asyncio.wait_for(fn(query, k), timeout_s)

    async def call(query: Query, k: int) -> list[Candidate]:
        results = await asyncio.gather(*(one(fn, query, k) for fn in shards), return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if not ok:
            raise errors[0]
        out = Partial(merge(ok, k, strategy))
        out.missing = tuple(i for i, r in enumerate(results) if isinstance(r, BaseException))
        return out

    return call
