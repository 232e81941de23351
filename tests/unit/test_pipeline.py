"""The search pipeline's degradation rules, with stand-in strategies (the test is about
the pipeline, not the strategies): slow or failing strategies and rankers degrade the
answer instead of failing it, and the breaker skips a strategy that just failed."""
from __future__ import annotations

import asyncio
import functools

import pytest

from core.records import Candidate
from engine.pipeline import Overloaded, SearchPipeline, Unavailable
from rl.policy import FixedPolicy


def fixed(rows):
    """A stand-in strategy answering (item_id, score, rank) rows, tagged with its name by `pipeline`."""
    async def fn(query, k, name="?"):
        return [Candidate.of(name, i, r, s) for i, s, r in rows[:k]]
    return fn


async def slow(query, k, name="?"):
    await asyncio.sleep(5)
    return []


async def broken(query, k, name="?"):
    raise RuntimeError("replica died")


async def rank_by_score(query, cands):
    return "test-ranker", sorted(((c.item_id, float(len(c.hits))) for c in cands), key=lambda p: (-p[1], p[0]))


def pipeline(retrievers, rank=rank_by_score, logged=None):
    logged = logged if logged is not None else []

    async def log(rec):
        logged.append(rec)
    policy = FixedPolicy(list(retrievers), {n: 10 for n in retrievers}, epsilon=0.0)
    named = {n: functools.partial(fn, name=n) for n, fn in retrievers.items()}
    return SearchPipeline(named, rank, log, policy, strategy_timeout_s=0.2, ranker_timeout_s=0.2,
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


def overloaded(retry_after_s):
    async def fn(query, k, name="?"):
        raise Overloaded("queue full", retry_after_s)
    return fn


def test_overloaded_strategy_is_left_out_without_opening_its_breaker():
    p = pipeline({"a": fixed([("x", 2.0, 1)]), "busy": overloaded(3.0)})
    res = asyncio.run(p.search("q", k=5))
    assert res.failed == ["busy"] and [i for i, _ in res.ranked] == ["x"]
    assert not p.breaker.is_open("busy")  # back-pressure is not a fault: keep calling it
    assert asyncio.run(p.search("q", k=5)).plan.budgets["busy"] == 10


def test_no_strategy_answering_raises_unavailable_and_logs_nothing():
    logged = []
    p = pipeline({"a": overloaded(3.0), "b": overloaded(None)}, logged=logged)
    with pytest.raises(Unavailable, match="overloaded") as exc:
        asyncio.run(p.search("q", k=5))
    assert exc.value.retry_after_s == 3.0 and logged == []
    p = pipeline({"a": broken}, logged=logged)
    with pytest.raises(Unavailable, match="no strategy answered"):
        asyncio.run(p.search("q", k=5))
    with pytest.raises(Unavailable, match="circuit open") as exc:  # the breaker now skips the only strategy
        asyncio.run(p.search("q", k=5))
    assert 1.0 <= exc.value.retry_after_s <= 60 and logged == []


def test_a_strategy_with_no_hits_is_an_answer_not_an_outage():
    res = asyncio.run(pipeline({"a": fixed([])}).search("q", k=5))
    assert res.ranked == [] and res.failed == []


def test_off_path_shadow_never_changes_what_the_user_sees(tmp_path):
    """A shadow-flagged request answers exactly as the same plan without the flag; only after
    the answer are the other strategies fetched at the top budget and the request logged again,
    completed, which the feedback store keeps in place of the first record."""
    from engine.feedback_store import FeedbackShard, read_export
    from rl.policy import ShadowPolicy

    rows = [(f"i{j}", 1.0 / j, j) for j in range(1, 120)]
    strategies = {"a": fixed(rows), "b": fixed([(f"i{j}", 1.0, j - 50) for j in range(51, 160)]), "c": fixed(rows)}
    named = {n: functools.partial(fn, name=n) for n, fn in strategies.items()}
    base = FixedPolicy(list(strategies), {"a": 10, "b": 0, "c": 25}, epsilon=0.0)
    shard = FeedbackShard(tmp_path, 0)
    logged = []

    async def log(rec):
        logged.append(rec)
        shard.log_request(rec)

    async def run(share):
        p = SearchPipeline(named, rank_by_score, log, ShadowPolicy(base, share), strategy_timeout_s=1.0)
        res = await p.search("q", k=10)
        shown_at_answer = len(logged)
        if res.shadow_task is not None:
            await res.shadow_task
        return res, shown_at_answer

    plain, _ = asyncio.run(run(0.0))
    shadow, logged_at_answer = asyncio.run(run(1.0))
    assert shadow.plan.shadow and not plain.plan.shadow
    assert shadow.ranked == plain.ranked and shadow.plan.budgets == plain.plan.budgets
    assert shadow.plan.propensity == plain.plan.propensity == pytest.approx(1.0)
    assert {c.item_id for c in shadow.candidates} == {c.item_id for c in plain.candidates}
    first, done = logged[-2], logged[-1]
    assert logged_at_answer == len(logged) - 1  # the completion is logged after the answer
    assert first.request_id == done.request_id and not first.fetched
    assert done.fetched == {"a": 100, "b": 100, "c": 100} and set(done.shadow_latency_ms) == {"a", "b", "c"}
    assert {c.item_id for c in done.served()} == {c.item_id for c in first.candidates}
    assert max(h.rank for c in done.candidates for s, h in c.hits.items() if s == "b") == 100
    assert done.shown == first.shown
    shard.export(tmp_path / "out")
    requests, _ = read_export(tmp_path / "out")
    assert len(requests) == 2 and requests[1].fetched == done.fetched  # one record per request, completed
    shard.close()
    again = FeedbackShard(tmp_path, 0)  # the replayed log keeps both requests, and no duplicate
    assert again.stats().requests == 2
    again.close()


def test_background_log_answers_first_and_logged_waits_for_the_write():
    """log_in_background: the answer does not wait on the log write; `logged` does, and a
    failed write is counted, not raised into the answer."""
    gate = asyncio.Event()
    stored = []

    async def slow_log(rec):
        await gate.wait()
        if rec.query == "fail":
            raise OSError("disk full")
        stored.append(rec.request_id)

    async def run():
        p = SearchPipeline({"a": functools.partial(fixed([("x", 2.0, 1)]), name="a")}, rank_by_score, slow_log,
                           FixedPolicy(["a"], {"a": 10}, epsilon=0.0), log_in_background=True)
        res = await p.search("q", k=5)
        assert stored == [] and res.request_id in p.pending_logs  # answered, still writing
        waiter = asyncio.create_task(p.logged(res.request_id))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        gate.set()
        await waiter
        assert stored == [res.request_id] and not p.pending_logs
        bad = await p.search("fail", k=5)
        with pytest.raises(OSError):
            await p.logged(bad.request_id)
        await p.drain()
        assert p.log_failures == 1 and stored == [res.request_id]
    asyncio.run(run())


def test_lookahead_serves_the_plans_prefix_and_logs_every_deeper_plan_exactly():
    """lookahead=100: each called strategy is fetched 100 deep, but the ranker sees and the user
    gets exactly the plan's own union; the log holds the deep lists with `fetched` depths, so a
    deeper plan's reward from this log equals its reward from fetching that plan directly."""
    from core.records import RequestRecord, within
    from rl.cost import CostModel
    from rl.reward import RewardConfig, plan_reward

    rows = [(f"i{j}", 1.0 / j, j) for j in range(1, 120)]
    strategies = {"a": fixed(rows), "b": fixed([(f"i{j}", 1.0, j - 50) for j in range(51, 160)]), "c": fixed(rows)}
    named = {n: functools.partial(fn, name=n) for n, fn in strategies.items()}
    plan = {"a": 10, "b": 25, "c": 0}
    ranked_input: list[list[str]] = []

    async def rank(query, cands):
        ranked_input.append(sorted(c.item_id for c in cands))
        return await rank_by_score(query, cands)

    def run(lookahead: int, budgets: dict[str, int]) -> tuple[object, RequestRecord]:
        logged: list[RequestRecord] = []

        async def log(rec):
            logged.append(rec)
        p = SearchPipeline(named, rank, log, FixedPolicy(list(strategies), budgets, epsilon=0.0), lookahead=lookahead)
        return asyncio.run(p.search("q", k=10)), logged[-1]

    plain, plain_rec = run(0, plan)
    deep, deep_rec = run(100, plan)
    assert ranked_input[0] == ranked_input[1]  # the ranker saw the plan's union, not the lookahead's
    assert deep.ranked == plain.ranked and deep_rec.shown == plain_rec.shown
    assert {c.item_id for c in deep.candidates} == {c.item_id for c in plain.candidates}
    assert deep.depth == {"a": 100, "b": 100} and not plain_rec.fetched and deep_rec.fetched == {"a": 100, "b": 100}
    assert deep_rec.depth == {"a": 100, "b": 100, "c": 0}
    assert {c.item_id for c in deep_rec.served()} == {c.item_id for c in plain_rec.candidates}
    assert max(h.rank for c in deep_rec.candidates for h in c.hits.values()) == 100
    cost, cfg = CostModel(strategy_ms={"a": {10: 1.0, 100: 2.0}}), RewardConfig()
    deeper = {"a": 50, "b": 100, "c": 0}
    _, direct_rec = run(0, deeper)
    acted = {"i45": 1.0, "i140": 0.5, "i3": 0.2}
    assert plan_reward(deep_rec.candidates, acted, deeper, cost, cfg) == pytest.approx(
        plan_reward(direct_rec.candidates, acted, deeper, cost, cfg))
    assert len(within(deep_rec.candidates, deeper)) == len(direct_rec.candidates)
    # what the lookahead paid: the plan's gain, the deeper calls' compute
    assert plan_reward(deep.candidates, acted, plan, cost, cfg, depth=deep.depth) == pytest.approx(
        plan_reward(plain.candidates, acted, plan, cost, cfg) - cfg.price(1.0))
