"""How the gain model picks its ridge strength (rl.reward_model.forward_alpha): on the most recent
contexts, by the value of the greedy plans each strength picks, with the one-standard-error rule;
no Ray."""
from __future__ import annotations

import numpy as np

from rl.plan_search import PlanSearch
from rl.reward_model import ALPHAS, MIN_VALIDATE, RECENT, RewardModel, forward_alpha

COSTS = np.array([0.0, 5.0, 5.0])  # plan 0 is the empty plan; plans 1 and 2 cost the same


def _kinds(n: int, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Contexts of two kinds (one-hot features): kind 0 gains from plan 1, kind 1 from plan 2."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 2, size=n)
    tables = np.where(kinds[:, None] == 0, [0.0, 1.0, 0.2], [0.0, 0.2, 1.0]) + rng.normal(0, noise, (n, 3))
    return np.eye(2)[kinds], tables


def test_features_that_decide_the_plan_get_a_weak_strength():
    """When the features tell which plan wins, the strongest shrinkage (every plan's mean) serves
    half the recent contexts the wrong plan; the chosen strength serves each its kind's plan (the
    best score; a shrunk prediction still ranks the plans right, so the rule may take a strong one)."""
    x, tables = _kinds(200, 0)
    z = (x - x.mean(0)) / x.std(0)
    alpha, scores = forward_alpha(z, tables, COSTS)
    assert alpha < ALPHAS[-1] and scores[alpha] == max(scores.values())
    assert scores[alpha] > scores[ALPHAS[-1]] + 1.0  # summed over six prices: about 0.4 per price


def test_features_that_say_nothing_get_the_strongest_shrinkage():
    """Twenty noise features over 40 contexts whose tables do not depend on them: no strength beats
    the plan means by a paired standard error, and the rule keeps the plan means."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 20))
    tables = np.array([0.0, 0.5, 0.45]) + rng.normal(0, 0.3, (40, 3))
    alpha, scores = forward_alpha(z, tables, COSTS)
    assert alpha == ALPHAS[-1]
    assert set(scores) == set(ALPHAS)


def test_a_clock_feature_that_only_grows_is_not_extrapolated():
    """A feature that grows with the log (a global hit rate) and, in the older contexts, happens to
    go with plan 1's gain: leave-one-out would reward the fit; the recent contexts, where the
    correlation is gone, do not, so the strength that ignores it wins."""
    rng = np.random.default_rng(4)
    n = 300
    clock = np.linspace(0, 1, n)
    plan1 = np.where(clock < 1 - RECENT, 2 * clock, 0.3) + rng.normal(0, 0.05, n)  # a trend that stops
    tables = np.column_stack([np.zeros(n), plan1, np.full(n, 0.5) + rng.normal(0, 0.05, n)])
    z = ((clock - clock.mean()) / clock.std())[:, None]
    alpha, _ = forward_alpha(z, tables, COSTS)
    assert alpha >= 1e4  # plan 2 (the plan means' choice) serves the recent contexts, not the trend's plan 1


def test_too_few_recent_contexts_keep_the_plan_means():
    z, tables = _kinds(MIN_VALIDATE, 5)
    assert forward_alpha(z, tables, COSTS) == (ALPHAS[-1], {})


def test_without_costs_the_strength_minimises_the_recent_squared_error():
    x, tables = _kinds(200, 6)
    alpha, scores = forward_alpha((x - x.mean(0)) / x.std(0), tables)
    assert all(v <= 0 for v in scores.values())  # minus the mean squared error
    assert scores[alpha] > scores[ALPHAS[-1]] and alpha <= 100.0  # the means miss each kind's table


def test_the_model_and_the_plan_search_report_their_strengths():
    x, tables = _kinds(200, 7)
    seen = np.r_[np.zeros(100), np.ones(100)]
    feats = np.column_stack([x, seen])
    model = RewardModel(split=2, costs=COSTS, min_full=5).fit(list(feats), list(tables), [np.ones(3, bool)] * 200)
    assert set(model.alphas) == {"split=0", "split=1"} and all(a in ALPHAS for a in model.alphas.values())
    assert RewardModel(alpha=3.0).fit(list(x), list(tables), [np.ones(3, bool)] * 200).alphas == {"all": 3.0}
    search = PlanSearch.fit(x, tables, np.tile(COSTS, (200, 1)))
    assert search.alphas["all"] in ALPHAS
    assert (search.greedy(0.01) == np.where(x[:, 0] == 1, 1, 2)).all()
