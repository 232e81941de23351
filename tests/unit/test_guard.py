"""The regime guard's decision and its pinning, with known answers (no training: `rl.guard` alone;
tests/live/test_bandit_train.py trains through it)."""
from __future__ import annotations

import numpy as np
import pytest

from rl.cost import CostModel
from rl.env import LoggedContext, ReplayBanditEnv
from rl.guard import MIN_CONTEXTS, decide, judge, pin_log_probs, pinned, regimes, static_plans
from rl.plan_search import PRICE_RANGE
from rl.reward import RewardConfig

STRATS = ["lexical", "dense"]
LEVELS = [0, 10, 100]


def test_regimes_split_on_the_feature_or_are_one():
    x = np.array([[0.0, 1.0], [0.0, 0.0], [3.0, 0.7]])
    assert regimes(x, 1).tolist() == [1, 0, 1]
    assert regimes(x, None).tolist() == [0, 0, 0]


def price(p: float, ms: np.ndarray) -> np.ndarray:
    return RewardConfig(price_per_10ms=p).price(ms)


def test_static_plans_take_the_best_mean_and_never_the_empty_plan():
    gain = {0: np.array([5.0, 1.0, 3.0, 2.0]), 1: np.array([0.0, -1.0, -3.0, -0.5])}
    cost = {0: np.zeros(4), 1: np.zeros(4)}
    assert static_plans(gain, cost, {0: 1, 1: 1}, price, 0.1) == ({0: 2, 1: 3}, 0.1)


def test_static_plans_meet_a_budget_at_the_lowest_price_that_does():
    # plan 1: gain 1 for 10 ms; plan 2: gain 2 for 100 ms; plan 3: gain 1.5 for 40 ms (per context)
    gain = {0: 10 * np.array([0.0, 1.0, 2.0, 1.5]), 1: 30 * np.array([0.0, 1.0, 2.0, 1.5])}
    cost = {0: 10 * np.array([0.0, 10.0, 100.0, 40.0]), 1: 30 * np.array([0.0, 10.0, 100.0, 40.0])}
    count = {0: 10, 1: 30}
    plans, p = static_plans(gain, cost, count, price, 0.01, budget_ms=1000.0)  # not binding: the lowest price
    assert plans == {0: 2, 1: 2} and p == pytest.approx(PRICE_RANGE[0])
    plans, p = static_plans(gain, cost, count, price, 0.01, budget_ms=50.0)
    assert plans == {0: 3, 1: 3} and 1 / 12 < p < 1 / 12 * 1.001  # 2 - 100 p / 10 = 1.5 - 40 p / 10
    plans, p = static_plans(gain, cost, count, price, 0.01, budget_ms=5.0)  # nothing that cheap: the cheapest
    assert plans == {0: 1, 1: 1} and p == pytest.approx(PRICE_RANGE[1])


def test_decide_lets_a_routing_through_only_when_it_wins_beyond_noise():
    rng = np.random.default_rng(0)
    n = 200
    reg = np.repeat([0, 1], n // 2)
    base = rng.normal(1.0, 0.5, n)
    # regime 0: the routing earns 0.3 more on every context; regime 1: the same on average, noisy
    v_static = base
    v_policy = np.where(reg == 0, base + 0.3, base + rng.normal(0.0, 0.5, n))
    out = decide({0: 4, 1: 7}, reg, v_policy, v_static)
    assert out[0]["contextual"] and abs(out[0]["advantage"] - 0.3) < 1e-9 and out[0]["static_plan"] == 4
    assert not out[1]["contextual"] and out[1]["contexts"] == n // 2
    # the same advantage on too few contexts: pinned, untested
    few = decide({0: 4}, reg[:MIN_CONTEXTS - 1], v_policy[:MIN_CONTEXTS - 1], v_static[:MIN_CONTEXTS - 1])
    assert not few[0]["contextual"] and "advantage" not in few[0]
    # a regime with no validation contexts at all stays pinned
    assert not decide({2: 1}, reg, v_policy, v_static)[2]["contextual"]


def test_pinning_puts_the_mass_on_the_static_plan_of_pinned_regimes_only():
    meta = {"feature_names": ["a", "query_acted_before"],
            "guard": {"feature": "query_acted_before", "static": {"0": {"lexical": 100, "dense": 0}}}}
    split, plans = pinned(meta)
    assert split == 1 and plans == {0: {"lexical": 100, "dense": 0}}
    logq = np.log(np.full((2, 2, 3), 1 / 3))
    x = np.array([[0.0, 0.0], [0.0, 1.0]])  # a new query (pinned), a repeat (routed)
    out = pin_log_probs(logq, x, split, plans, STRATS, LEVELS)
    p = np.exp(out)
    assert np.allclose(p.sum(-1), 1.0)
    assert p[0, 0, 2] > 1 - 1e-8 and p[0, 1, 0] > 1 - 1e-8
    assert np.array_equal(out[1], logq[1])
    assert pinned({"feature_names": ["a"]}) == (None, {})
    # no regime feature: the one regime (0) covers every context
    none_split, every = pinned({"feature_names": None, "guard": {"feature": None, "static": {"0": {"dense": 10}}}})
    assert none_split is None
    assert np.exp(pin_log_probs(logq, x, none_split, every, STRATS, LEVELS))[:, 1, 1].min() > 1 - 1e-8


def test_a_pinned_plan_with_none_of_its_strategies_up_leaves_the_module_in_charge():
    plans = {0: {"lexical": 100, "dense": 0}}
    logq = np.log(np.full((2, 2, 3), 1 / 3))
    x = np.zeros((2, 2))
    av = np.array([[True, True], [False, True]])  # the second context has lexical down
    out = pin_log_probs(logq, x, None, plans, STRATS, LEVELS, av)
    assert np.exp(out[0, 0, 2]) > 1 - 1e-8 and np.array_equal(out[1], logq[1])


def test_pins_of_a_feature_the_policy_does_not_have_are_refused():
    meta = {"feature_names": ["a"], "guard": {"feature": "query_acted_before", "static": {"0": {"dense": 10}}}}
    with pytest.raises(ValueError, match="query_acted_before"):
        pinned(meta)


def _ctx(regime: float, gains: dict[tuple[int, int], float], available=("lexical", "dense"),
         depth: dict[str, int] | None = None, full: bool = False) -> LoggedContext:
    table = np.zeros((3, 3))
    for idx, g in gains.items():
        table[idx] = g
    return LoggedContext(features=np.array([0.0, regime]), gains=table, returned={"lexical": 100, "dense": 100},
                         available=available, depth=depth, full=full)


def test_judge_values_each_regime_against_its_static_plan_on_the_newest_contexts():
    free = RewardConfig(price_per_10ms=0.0)
    cost = CostModel(strategy_ms={s: {10: 1.0, 100: 1.0} for s in STRATS}, ranker_base_ms=0.0,
                     ranker_per_candidate_ms=0.0, call_overhead_ms=0.0)
    older = [_ctx(0.0, {(1, 0): 2.0, (0, 1): 1.0}) for _ in range(30)]  # regime 0 only: lexical10 is best
    # newest: regime 1, never seen before, where the routing's dense10 earns 1 more than lexical10;
    # and regime-0 contexts with lexical down, where the static plan cannot serve (the routing's value)
    newer = [_ctx(1.0, {(1, 0): 1.0, (0, 1): 2.0}) for _ in range(25)]
    newer += [_ctx(0.0, {(1, 0): 2.0, (0, 1): 1.0}, available=("dense",)) for _ in range(25)]
    env = ReplayBanditEnv(older + newer, STRATS, LEVELS, free, cost=cost)
    out = judge(env, older, newer, 1, lambda x, av: {"lexical": 0, "dense": 10}, 0.0)
    assert out["regimes"]["0"]["static_plan"] == {"lexical": 10, "dense": 0}
    assert out["regimes"]["1"]["static_plan"] == {"lexical": 10, "dense": 0}  # the overall best of the older
    assert out["regimes"]["1"]["contextual"] and out["regimes"]["1"]["advantage"] == pytest.approx(1.0)
    assert out["regimes"]["0"]["advantage"] == 0.0 and not out["regimes"]["0"]["contextual"]
    assert out["static"] == {"0": {"lexical": 10, "dense": 0}}


def test_judge_counts_only_contexts_where_both_plans_are_exact():
    """The routing's plan (dense10) looks 2 better than the static plan (lexical10) where the
    reward model filled its gain in (requests served lexical10 alone, so dense's gain was never
    seen), and is 0.5 worse on shadow requests, where every gain is exact. The guard must judge on
    the shadow ones only, and pin; with too few exact contexts it pins for lack of evidence.
    Fails if model-filled gains entered the test (they would let the routing through)."""
    free = RewardConfig(price_per_10ms=0.0)
    cost = CostModel(strategy_ms={s: {10: 1.0, 100: 1.0} for s in STRATS}, ranker_base_ms=0.0,
                     ranker_per_candidate_ms=0.0, call_overhead_ms=0.0)
    served = {"lexical": 10, "dense": 0}
    older = [_ctx(0.0, {(1, 0): 1.0, (0, 1): 0.5}, full=True) for _ in range(30)]
    filled = [_ctx(0.0, {(1, 0): 1.0, (0, 1): 3.0}, depth=served) for _ in range(40)]  # dense10: the model's 3
    shadow = [_ctx(0.0, {(1, 0): 1.0, (0, 1): 0.5}, depth=served, full=True) for _ in range(MIN_CONTEXTS + 5)]
    assert filled[0].known(ReplayBanditEnv(older, STRATS, LEVELS, free, cost=cost).space).sum() == 2  # {}, lexical10
    routing = lambda x, av: {"lexical": 0, "dense": 10}  # noqa: E731
    for newer, exact, advantage in ((filled, 0, None), (filled + shadow, MIN_CONTEXTS + 5, -0.5)):
        env = ReplayBanditEnv(older + newer, STRATS, LEVELS, free, cost=cost)
        row = judge(env, older, newer, 1, routing, 0.0)["regimes"]["0"]
        assert row["static_plan"] == served and row["contexts"] == len(newer) and row["exact_contexts"] == exact
        assert not row["contextual"] and row.get("advantage") == (None if advantage is None else pytest.approx(advantage))
    undepthed = [_ctx(0.0, {(1, 0): 1.0, (0, 1): 3.0}) for _ in range(40)]  # no depth: every gain exact
    env = ReplayBanditEnv(older + undepthed, STRATS, LEVELS, free, cost=cost)
    assert judge(env, older, undepthed, 1, routing, 0.0)["regimes"]["0"]["contextual"]
