"""The direct method's greedy plans and the budget's price (rl.plan_search), against answers
worked out by hand; no Ray."""
from __future__ import annotations

import numpy as np
import pytest

from rl.plan_search import PRICE_RANGE, PlanSearch

# two contexts, three plans (0 = the empty plan); plan 2 gains more and costs 30 ms, plan 1 10 ms
GAINS = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 1.5]], dtype=np.float32)
COSTS = np.array([[0.0, 10.0, 30.0], [0.0, 10.0, 30.0]], dtype=np.float32)


def test_greedy_plans_by_hand():
    """Per 10 ms, plan 2 costs 2 more units of price: context 0 keeps it below a price of 0.5,
    context 1 below 0.25; the empty plan is never served, even when everything costs more
    than it gains."""
    s = PlanSearch(GAINS, COSTS)
    assert s.greedy(0.1).tolist() == [2, 2]
    assert s.greedy(0.3).tolist() == [2, 1]
    assert s.greedy(0.6).tolist() == [1, 1]
    assert s.greedy(50.0).tolist() == [1, 1]
    assert s.mean_cost(s.greedy(0.3)) == pytest.approx(20.0)


@pytest.mark.parametrize(("budget", "price"), [(20.0, 0.25), (25.0, 0.25), (10.0, 0.5), (30.0, PRICE_RANGE[0]),
                                               (5.0, PRICE_RANGE[1])])
def test_price_for_budget_is_the_lowest_price_that_meets_it(budget, price):
    """Mean cost is 30 ms below a price of 0.25, 20 ms up to 0.5 and 10 ms above: the lowest
    price meeting the budget; the lowest price searched when everything fits, the highest
    when nothing does (no plan is that cheap)."""
    found, trace = PlanSearch(GAINS, COSTS).price_for_budget(budget)
    assert found == pytest.approx(price, rel=1e-6)
    assert trace and all(t["greedy_cost_ms"] in (10.0, 20.0, 30.0) for t in trace)
    if budget >= 10.0:
        assert PlanSearch(GAINS, COSTS).mean_cost(PlanSearch(GAINS, COSTS).greedy(found)) <= budget


def test_the_gain_model_predicts_tables_that_follow_the_features():
    """Contexts of two kinds (one-hot features): the fitted model predicts each kind's table, so
    the greedy plan follows the kind; features that say nothing give every plan's mean gain,
    and the greedy plan is the best fixed plan at that price."""
    rng = np.random.default_rng(0)
    kinds = rng.integers(0, 2, size=200)
    tables = np.where(kinds[:, None] == 0, [0.0, 1.0, 0.2], [0.0, 0.2, 1.0]) + rng.normal(0, 0.05, (200, 3))
    feats = np.eye(2)[kinds]
    costs = np.tile([0.0, 5.0, 5.0], (200, 1))
    s = PlanSearch.fit(feats, tables, costs)
    assert s.gains.shape == (200, 3)
    assert (s.greedy(0.01) == np.where(kinds == 0, 1, 2)).all()
    blind = PlanSearch.fit(np.zeros((200, 2)), tables, costs)
    best_fixed = int(np.argmax(tables[:, 1:].mean(axis=0))) + 1
    assert (blind.greedy(0.01) == best_fixed).all()


def test_features_outside_the_training_range_are_clipped_to_it():
    """A feature that barely varied in training (the hour of day of a short log) must not move
    predictions beyond what the training range gives: a value far outside predicts as the
    nearest edge."""
    from rl.reward_model import RewardModel

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 2, 100), 0.5 + rng.normal(0, 1e-3, 100)])  # kind, near-constant hour
    tables = np.column_stack([np.zeros(100), x[:, 0], 1 - x[:, 0]]) + rng.normal(0, 0.01, (100, 3))
    m = RewardModel(alpha=1.0, min_full=2).fit(list(x), list(tables), [np.ones(3, bool)] * 100)
    edge = np.array([1.0, x[:, 1].max()])
    far = np.array([1.0, -0.9])  # another hour: hundreds of training spreads away
    assert np.allclose(m.predict(far), m.predict(np.array([1.0, x[:, 1].min()])))
    assert np.allclose(m.predict_many(np.stack([edge, far])), np.stack([m.predict(edge), m.predict(far)]))
    assert abs(m.predict(far)[1] - 1.0) < 0.1  # still the kind's table, not an extrapolation


def test_a_split_model_keeps_each_regime_to_its_own_table():
    """Repeated queries (split feature 1) gain from plan 1 only when another feature is high,
    new ones (0) always from plan 2: one linear model over both carries the repeats' slope into
    new queries; one model per side of the split does not."""
    from rl.reward_model import RewardModel

    rng = np.random.default_rng(2)
    seen = rng.integers(0, 2, 400).astype(float)
    other = rng.random(400)
    x = np.column_stack([seen, other])
    tables = np.column_stack([np.zeros(400), seen * 3 * other, 1 - seen]) + rng.normal(0, 0.01, (400, 3))
    known = [np.ones(3, bool)] * 400
    split = RewardModel(alpha=1.0, min_full=5, split=0).fit(list(x), list(tables), known)
    pooled = RewardModel(alpha=1.0, min_full=5).fit(list(x), list(tables), known)
    new_high = np.array([0.0, 0.95])
    assert split.parts and np.allclose(split.predict(new_high), [0.0, 0.0, 1.0], atol=0.05)
    assert abs(pooled.predict(new_high)[1]) > 0.3  # the repeats' slope leaks into new queries
    assert np.allclose(split.predict_many(x[:5]), np.stack([split.predict(v) for v in x[:5]]))
    s = PlanSearch.fit(x, tables, np.tile([0.0, 1.0, 1.0], (400, 1)), split=0)
    assert (s.greedy(0.01)[seen == 0] == 2).all()


def test_plans_a_context_cannot_realise_are_never_chosen():
    """With a strategy down, the warm start sets the plans that call it to -inf: even at the highest
    price, where every plan loses, greedy picks a realisable non-empty plan, never a free one
    that only calls the failed strategy."""
    gains = np.array([[0.0, -np.inf, 0.5]], dtype=np.float32)  # plan 1 calls the failed strategy
    costs = np.array([[0.0, 0.0, 30.0]], dtype=np.float32)  # masked: calling a failed strategy costs nothing
    s = PlanSearch(gains, costs)
    assert s.greedy(100.0).tolist() == [2] and s.greedy(1e-4).tolist() == [2]


def test_the_retrain_credits_by_retrieval_rank_when_the_serving_ranker_cannot_be_loaded(tmp_path):
    """A ranker that cannot be found must not stop the bandit's retrain: it falls back and says why."""
    from core.paths import StatePaths
    from learning.retrain import _serving_ranker

    class Gone:
        def current(self, kind):
            return "ranker-that-was-deleted"

    class Down:
        def current(self, kind):
            raise ConnectionError("healthz did not answer")

    paths = StatePaths(tmp_path)
    for promoter, why in ((Gone(), "ranker-that-was-deleted"), (Down(), "healthz did not answer")):
        ranker, credit = _serving_ranker(paths, promoter)
        assert ranker is None and credit.startswith("retrieval rank") and why in credit

    class Fallback:
        def current(self, kind):
            return "fallback"

    ranker, credit = _serving_ranker(paths, Fallback())
    assert ranker is not None and credit == "ranked by the serving ranker fallback"
