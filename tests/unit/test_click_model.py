"""The position-based click model (`rl.click_model`): its fit recovers known parameters from
simulated impressions, and a plan's expected gain under it (`gain_table(examination=...)`)
equals the sum worked out by hand. Synthetic logs, no Ray, no indexes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from rl.click_model import ClickModelFit, fit_click_model, full_scores
from rl.policy import ActionSpace
from rl.reward import RewardConfig, SupportOrders, gain_table

ONE = ActionSpace(["lexical"])


def request(rid: str, items: list[str]) -> RequestRecord:
    return RequestRecord(request_id=rid, ts=0.0, query="q", features=[0.0],
                         plan=PlanRecord(budgets={"lexical": 10}, propensity=1.0, policy_version="v"),
                         candidates=[Candidate(i, {"lexical": Hit(r, 1.0)})
                                     for r, i in enumerate(items, 1)],
                         shown=items, ranker_version="r")


def test_the_fit_recovers_a_known_position_based_model():
    """Users examine position p with probability p**-1 and click an examined item with
    probability exp(0.5 * score - 1): the fit finds eta 1, a 0.5, b -1."""
    rng = np.random.default_rng(0)
    eta, a, b = 1.0, 0.5, -1.0
    requests, events, orders = [], {}, {}
    for n in range(3000):
        items = [f"r{n}-{p}" for p in range(1, 11)]
        scores = dict(zip(items, rng.uniform(-2.0, 1.0, size=10).tolist()))
        r = request(f"r{n}", items)
        requests.append(r)
        orders[r.request_id] = SupportOrders({frozenset({"lexical"}): scores})
        events[r.request_id] = [EventRecord(event_id=f"{r.request_id}-{p}", request_id=r.request_id, item_id=i,
                                            type="click", position=p, ts=0.0)
                                for p, i in enumerate(items, 1)
                                if rng.random() < math.exp(b + a * scores[i] - eta * math.log(p))]
    fit = fit_click_model(requests, events, RewardConfig(), orders)
    assert fit.impressions == 30000
    assert fit.eta == pytest.approx(eta, abs=0.06)
    true = {x: math.exp(b + a * x) for x in (-1.5, -0.5, 0.5)}
    got = fit.weights({str(x): x for x in true})
    assert all(got[str(x)] == pytest.approx(v, rel=0.1) for x, v in true.items())


def test_no_acted_impression_is_refused_not_fitted():
    r = request("r0", ["a", "b"])
    with pytest.raises(ValueError, match="no acted impression"):
        fit_click_model([r], {}, RewardConfig(), {"r0": SupportOrders({frozenset({"lexical"}): {"a": 1.0}})})


def test_a_plans_expected_gain_is_the_hand_worked_sum():
    """gain of lexical 10 = sum over its page of v_i * p**-eta / log2(1 + p); lexical 25 adds
    the items at ranks 11..25 only where they outrank others (here: none reach the page)."""
    fit = ClickModelFit(eta=1.2, knots=[0.0, 3.0], levels=[-0.5, 1.6], impressions=1)
    items = [f"i{k}" for k in range(1, 31)]
    cands = [Candidate(i, {"lexical": Hit(k, 1.0)}) for k, i in enumerate(items, 1)]
    scores = {i: 3.0 - 0.1 * k for k, i in enumerate(items, 1)}  # the ranker keeps the list's order
    v = fit.weights(scores)
    table = gain_table(cands, v, ONE, RewardConfig(), scores=scores,
                       by_support=SupportOrders({frozenset({"lexical"}): scores}), examination=fit.eta)
    by_hand = sum(v[i] * p ** -1.2 / math.log2(1 + p) for p, i in enumerate(items[:10], 1))
    assert table[ONE.levels.index(10)] == pytest.approx(by_hand)
    assert table[ONE.levels.index(25)] == pytest.approx(by_hand)  # deeper items rank below the page
    assert table[0] == 0.0


def test_the_curve_is_linear_between_knots_and_flat_beyond():
    fit = ClickModelFit(eta=1.0, knots=[0.0, 1.0, 3.0], levels=[0.0, 1.0, 0.0], impressions=1)
    w = fit.weights({"lo": -5.0, "a": 0.5, "b": 1.0, "c": 2.0, "hi": 9.0})
    assert w["lo"] == pytest.approx(1.0) and w["hi"] == pytest.approx(1.0)
    assert w["a"] == pytest.approx(math.exp(0.5)) and w["b"] == pytest.approx(math.e)
    assert w["c"] == pytest.approx(math.exp(0.5))


def test_full_scores_take_the_largest_support_at_the_deepest_fetch():
    lex, both = frozenset({"lexical"}), frozenset({"lexical", "dense"})
    orders = SupportOrders({lex: {"a": 1.0}, both: {"a": 2.0}}, {both: {"a": 3.0}})
    assert full_scores(orders) == {"a": 3.0}
    assert full_scores(SupportOrders({lex: {"a": 1.0}, both: {"a": 2.0}})) == {"a": 2.0}
    assert full_scores(SupportOrders({})) == {}
