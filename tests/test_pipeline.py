"""The search pipeline's degradation rules, with stand-in strategies (the test is about
the pipeline, not the strategies): slow or failing strategies and rankers degrade the
answer instead of failing it, and the breaker skips a strategy that just failed."""
from __future__ import annotations

import asyncio

import pytest

from ltrr.pipeline import SearchPipeline
from rl.policy import FixedPolicy


def fixed(rows):
    async def fn(query, k, user_id, context):
        return rows[:k]
    return fn


async def slow(query, k, user_id, context):
    await asyncio.sleep(5)
    return []


async def broken(query, k, user_id, context):
    raise RuntimeError("replica died")


async def rank_by_score(query, cands):
    return "test-ranker", sorted(((c.item_id, float(len(c.hits))) for c in cands), key=lambda p: (-p[1], p[0]))


def pipeline(retrievers, rank=rank_by_score, logged=None):
    logged = logged if logged is not None else []

    async def log(rec):
        logged.append(rec)
    policy = FixedPolicy(list(retrievers), {n: 10 for n in retrievers}, epsilon=0.0)
    return SearchPipeline(retrievers, rank, log, policy, strategy_timeout_s=0.2, ranker_timeout_s=0.2,
                          cooldown_s=60)


def test_union_with_provenance_and_log():
    logged = []
    p = pipeline({"a": fixed([("x", 2.0, 1), ("y", 1.0, 2)]), "b": fixed([("y", 0.9, 1)])}, logged=logged)
    res = asyncio.run(p.search("q", k=5))
    assert res.ranked[0][0] == "y"  # found by both
    assert res.found_by == {"x": ["a"], "y": ["a", "b"]}
    assert res.failed == [] and res.ranker_version == "test-ranker"
    assert logged[0].request_id == res.request_id and logged[0].shown == ["y", "x"]
    assert logged[0].plan.propensity == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [slow, broken])
def test_failed_strategy_degrades_and_breaker_skips_it(bad):
    p = pipeline({"a": fixed([("x", 2.0, 1)]), "bad": bad})
    res = asyncio.run(p.search("q", k=5))
    assert res.failed == ["bad"] and [i for i, _ in res.ranked] == ["x"]
    again = asyncio.run(p.search("q", k=5))
    assert again.plan.budgets["bad"] == 0 and again.failed == []  # skipped while the breaker is open


def test_failed_ranker_serves_fused_order():
    async def bad_rank(query, cands):
        raise RuntimeError("ranker down")
    p = pipeline({"a": fixed([("x", 2.0, 1), ("y", 1.0, 2)])}, rank=bad_rank)
    res = asyncio.run(p.search("q", k=5))
    assert res.failed == ["ranker"] and [i for i, _ in res.ranked] == ["x", "y"]
