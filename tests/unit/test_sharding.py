"""Scatter-gather over shards (engine/sharding.py) and the shard assignment (retrievers/shards.py)."""
from __future__ import annotations

import asyncio

import pytest

from core.records import Candidate
from engine.pipeline import Overloaded
from engine.sharding import Partial, merge, scatter_gather
from retrievers.base import Query, ranked
from retrievers.shards import shard_of


def lst(pairs: list[tuple[str, float]]) -> list[Candidate]:
    return ranked(pairs, "lexical", 100)


def test_merge_orders_by_score_then_id_and_reranks():
    a = lst([("a", 3.0), ("c", 1.0), ("e", 0.5)])
    b = lst([("b", 2.0), ("d", 1.0), ("f", 0.1)])
    got = merge([a, b], 4, "lexical")
    assert [(c.item_id, c.rank, c.strategy) for c in got] == [
        ("a", 1, "lexical"), ("b", 2, "lexical"), ("c", 3, "lexical"), ("d", 4, "lexical")]
    unsharded = lst([("a", 3.0), ("c", 1.0), ("e", 0.5), ("b", 2.0), ("d", 1.0), ("f", 0.1)])[:4]
    assert [(c.item_id, c.score, c.rank) for c in got] == [(c.item_id, c.score, c.rank) for c in unsharded]


def call(result):
    async def fn(query: Query, k: int):
        if isinstance(result, BaseException):
            raise result
        if result == "hang":
            await asyncio.sleep(10)
        return result[:k]
    return fn


def test_a_failed_or_slow_shard_degrades_and_is_named():
    fn = scatter_gather("dense", [call(lst([("a", 1.0)])), call(RuntimeError("node lost")), call("hang")], 0.2)
    out = asyncio.run(fn(Query("q"), 10))
    assert isinstance(out, Partial) and out.missing == (1, 2) and [c.item_id for c in out] == ["a"]
    full = asyncio.run(scatter_gather("dense", [call(lst([("a", 1.0)])), call(lst([("b", 2.0)]))], 1)(Query("q"), 1))
    assert full.missing == () and [c.item_id for c in full] == ["b"]


def test_every_shard_failing_raises_the_first_error():
    fn = scatter_gather("dense", [call(Overloaded("full", 2.0)), call(RuntimeError("x"))], 1)
    with pytest.raises(Overloaded):
        asyncio.run(fn(Query("q"), 5))


def test_shard_assignment_is_stable_and_spreads():
    ids = [f"t{n:05d}" for n in range(2000)]
    counts = [sum(shard_of(i, 4) == s for i in ids) for s in range(4)]
    assert min(counts) > 400 and shard_of("t00042", 4) == shard_of("t00042", 4)
    assert shard_of("t00042", 1) == 0
