"""The bench's building blocks with known answers: memory's per-request list, and the headroom bounds."""
from __future__ import annotations

import numpy as np
import pytest

SYSTEMS = {"ltrr", "full_fanout", "rrf", "best_fixed", "oracle", "lexical", "dense", "memory", "popularity",
           "structured", "explore"}
KEYS = {"reward_last_quarter", "candidate_recall", "ndcg@10", "candidates_per_query", "p50_ms"}


def test_with_memory_replaces_only_the_memory_hits():
    """The bench's per-request fan-out: memory's current list replaces its seeded hits;
    the other strategies' hits stay; an item only the old memory list had is dropped."""
    from core.records import Candidate, Hit
    from ltrr.bench.workload import with_memory

    old = [Candidate(item_id="a", hits={"lexical": Hit(1, 2.0), "memory": Hit(3, 1.0)}),
           Candidate(item_id="b", hits={"memory": Hit(1, 1.5)})]
    learned = [Candidate.of("memory", "c", 1, 1.9),
               Candidate.of("memory", "a", 2, 1.2)]
    got = {c.item_id: {s: h.rank for s, h in c.hits.items()} for c in with_memory(old, learned)}
    assert got == {"a": {"lexical": 1, "memory": 2}, "c": {"memory": 1}}


def _space2():
    from rl.policy import ActionSpace
    return ActionSpace(["a", "b"], levels=(0, 10))  # plans: empty, b, a, a+b (grid order)


def test_per_query_cv_recovers_a_query_dependent_best_plan():
    """Two kinds of query, each with its own best plan: the cross-validated per-query policy
    finds both (reward 1 everywhere); the best fixed plan only serves one kind (0.5)."""
    from ltrr.bench.headroom import bounds, per_query_cv

    space = _space2()
    gains = np.zeros((400, 4))
    keys = [("q0" if t % 2 else "q1", False) for t in range(400)]
    for t, (k, _) in enumerate(keys):
        gains[t, 1 if k == "q0" else 2] = 1.0  # q0 wants plan "b", q1 wants plan "a"
    costs = np.zeros(4)
    cv = per_query_cv(np.where(np.arange(4) == 0, -np.inf, gains - costs), keys)
    assert cv.mean() == pytest.approx(1.0)
    b = bounds(gains, costs, keys, space)
    assert b["best_fixed"] == pytest.approx(0.5) and b["per_query_cv"] == pytest.approx(1.0)
    assert b["headroom"] == pytest.approx(0.5) and b["oracle"] == pytest.approx(1.0)


def test_headroom_is_zero_when_the_query_tells_nothing():
    """Rewards that do not depend on the query: per-query choices only fit noise, so the
    cross-validated estimate does not beat the best fixed plan (while the oracle does);
    exploration prices and the depth gain follow from the table by hand."""
    from ltrr.bench.headroom import bounds

    space = _space2()
    rng = np.random.default_rng(0)
    n = 4000
    gains = np.zeros((n, 4))
    gains[:, 1] = rng.random(n) < 0.5  # plan b finds the item half the time
    gains[:, 2] = rng.random(n) < 0.6  # plan a 60 %
    gains[:, 3] = np.maximum(gains[:, 1], gains[:, 2])
    costs = np.array([0.0, 0.1, 0.0, 0.2])  # plans a and a+b are worth the same 0.6 on average
    keys = [(f"q{t % 50}", False) for t in range(n)]
    b = bounds(gains, costs, keys, space)
    lq = gains[3 * n // 4:] - costs
    assert b["best_fixed"] == pytest.approx(max(lq[:, 2].mean(), lq[:, 3].mean()), abs=1e-4)
    in_sample = np.mean([lq[np.arange(len(lq)) % 50 == q, 1:].mean(axis=0).max() for q in range(50)])
    assert in_sample > b["best_fixed"] + 0.01  # choosing per query in hindsight fits the noise
    assert b["headroom"] <= 0.005  # choosing on the other half does not
    assert b["oracle"] > b["best_fixed"] + 0.05
    assert b["shadow_price_per_pct"] == pytest.approx((b["best_fixed"] - lq[:, 3].mean()) / 100, abs=1e-5)
    assert b["epsilon_price_per_pct"] == pytest.approx((b["best_fixed"] - lq[:, 1:].mean()) / 100, abs=1e-5)
    assert b["depth_gain"] == 0.0  # one non-zero level: top and lowest level coincide
