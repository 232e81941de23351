"""Plan gains recomputed from logs (semi-bandit sub-plan credit), measured costs, the reward
model and DR against exact values, and the replay env.

Hand-made logs with answers computed by hand, and synthetic bandits whose exact values are
known; no Ray, no indexes."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from core.events import EVENT_WEIGHTS
from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord, within
from rl.cost import CostModel
from rl.env import LoggedContext, ReplayBanditEnv
from rl.experience import experience
from rl.ope import doubly_robust
from rl.policy import ActionSpace, FixedPolicy, PolicyContext
from rl.reward import (
    RewardConfig,
    acted_items,
    gain_table,
    known_mask,
    plan_gain,
    plan_reward,
    returned_counts,
    reward_table,
    union_under_plan,
)
from rl.reward_model import RewardModel

CFG = RewardConfig(price_per_10ms=0.1)
COST = CostModel(strategy_ms={"lexical": {10: 2.0, 100: 4.0}, "dense": {10: 8.0, 100: 10.0}},
                 ranker_base_ms=0.5, ranker_per_candidate_ms=0.01, call_overhead_ms=1.0)
TWO = ActionSpace(["lexical", "dense"])


def cand(item: str, **ranks: int) -> Candidate:
    return Candidate(item_id=item, hits={s: Hit(r, 1.0 / r) for s, r in ranks.items()})


# "a": lexical rank 3, dense rank 30 (played, w=2); "b": dense rank 5 (clicked, w=1); "c": lexical 60 (not acted)
CANDS = [cand("a", lexical=3, dense=30), cand("b", dense=5), cand("c", lexical=60)]
ACTED = {"a": 2.0, "b": 1.0}


def event(item: str, kind: str, n: int = 0, rid: str = "r1") -> EventRecord:
    return EventRecord(event_id=f"e{item}{kind}{n}{rid}", request_id=rid, item_id=item, type=kind, position=1,
                       ts=0.0)


def test_acted_items_takes_max_weight_per_item():
    evs = [event("a", "click"), event("a", "play"), event("b", "click"), event("c", "skip"), event("d", "like")]
    assert acted_items(evs, CFG) == {"a": 2.0, "b": 1.0, "c": EVENT_WEIGHTS["skip"], "d": 3.0}
    with pytest.raises(ValueError):
        acted_items([event("a", "click"), event("b", "click", rid="r2")], CFG)


def test_union_and_within():
    assert union_under_plan(CANDS, {"lexical": 10, "dense": 0}) == {"a": 3}
    assert union_under_plan(CANDS, {"lexical": 0, "dense": 50}) == {"a": 30, "b": 5}
    assert union_under_plan(CANDS, {"lexical": 100, "dense": 50}) == {"a": 3, "b": 5, "c": 60}
    got = within(CANDS, {"lexical": 10, "dense": 10})
    assert [(c.item_id, sorted(c.hits)) for c in got] == [("a", ["lexical"]), ("b", ["dense"])]


def test_cost_model_by_hand():
    assert COST.strategy_cost("lexical", 0) == 0.0
    assert COST.strategy_cost("lexical", 55) == pytest.approx(3.0 + 1.0)  # interpolated 2..4, plus the call
    assert COST.strategy_cost("unknown", 10) == pytest.approx(3.0)  # the default 2 ms, plus the call
    # lexical 10 (3 ms) + dense 10 (9 ms) + ranker 0.5 + 0.01 * 20 candidates
    assert COST.plan_ms({"lexical": 10, "dense": 10}) == pytest.approx(12.7)
    assert COST.plan_ms({"lexical": 10, "dense": 10}, returned={"lexical": 4, "dense": 100}) == pytest.approx(12.64)
    t = COST.table(TWO, {"lexical": 4})
    for i, j in itertools.product(range(5), repeat=2):
        b = {"lexical": TWO.levels[i], "dense": TWO.levels[j]}
        assert t[i, j] == pytest.approx(COST.plan_ms(b, returned={"lexical": 4}))
    assert COST.scaled("dense", 3.0).strategy_cost("dense", 10) == pytest.approx(25.0)
    fit = CostModel.fit({"lexical": [(10, 1.0), (10, 3.0), (10, 2.0), (100, 5.0)]}, [(10, 1.2), (110, 2.2)])
    assert fit.strategy_ms == {"lexical": {10: 2.0, 100: 5.0}}
    assert fit.ranker_per_candidate_ms == pytest.approx(0.01) and fit.ranker_base_ms == pytest.approx(1.1)


def test_plan_reward_by_hand():
    # lexical=10: a at rank 3 -> 2/log2(4) = 1.0; cost 3 + 0.5 + 0.01 * 1 candidate = 3.51 ms -> 0.0351
    assert plan_gain(CANDS, ACTED, {"lexical": 10, "dense": 0}, CFG) == pytest.approx(1.0)
    assert plan_reward(CANDS, ACTED, {"lexical": 10, "dense": 0}, COST, CFG) == pytest.approx(1 - 0.0351)
    # dense=25: a excluded (rank 30 > 25), b at rank 5 -> 1/log2(6)
    assert plan_gain(CANDS, ACTED, {"lexical": 0, "dense": 25}, CFG) == pytest.approx(1 / math.log2(6))
    assert plan_reward(CANDS, ACTED, {"lexical": 0, "dense": 0}, COST, CFG) == 0.0


@pytest.mark.parametrize("ranked", [False, True])
@pytest.mark.parametrize("negative", [False, True])
def test_gain_table_matches_brute_force_six_strategies(negative, ranked):
    """The table equals plan_gain plan by plan: at retrieval rank, and with the ranker's scores,
    where an acted item counts at its position in the plan's ranked union (cut at a page of 5;
    integer scores, so ties are broken by item id)."""
    strategies = ["lexical", "dense", "memory", "popularity", "structured", "explore"]
    space = ActionSpace(strategies)
    rng = np.random.default_rng(4 if ranked else 3)
    cands = [Candidate(f"i{k}", {s: Hit(int(rng.integers(1, 120)), 0.0) for s in strategies if rng.random() < .4})
             for k in range(60 if ranked else 40)]
    cands = [c for c in cands if c.hits]
    scores = {c.item_id: float(rng.integers(0, 20)) for c in cands} if ranked else None
    acted = {c.item_id: float(rng.choice([1.0, 2.0, -0.5 if negative else 3.0])) for c in cands[::4 if ranked else 3]}
    cfg = CFG.model_copy(update={"page": 5})
    t = gain_table(cands, acted, space, cfg, scores=scores)
    assert t.any()
    for idx in [tuple(int(i) for i in rng.integers(0, 5, size=6)) for _ in range(300)]:
        b = {s: space.levels[i] for s, i in zip(strategies, idx)}
        assert t[idx] == pytest.approx(plan_gain(cands, acted, b, cfg, scores), abs=1e-9)


def test_ranked_gain_by_hand():
    """c scores above b above a: the full plan shows c, b, a; lexical at 10 shows a alone."""
    scores = {"a": 0.1, "b": 0.5, "c": 0.9}
    full = {"lexical": 100, "dense": 50}
    assert plan_gain(CANDS, ACTED, full, CFG, scores) == pytest.approx(1 / math.log2(3) + 2 / math.log2(4))
    assert plan_gain(CANDS, ACTED, {"lexical": 10, "dense": 0}, CFG, scores) == pytest.approx(2.0)
    # a page of two: a, third, is not seen; the retrieval-rank definition ignores the scores
    assert plan_gain(CANDS, ACTED, full, CFG.model_copy(update={"page": 2}), scores) == pytest.approx(1 / math.log2(3))
    retrieved = CFG.model_copy(update={"position": "retrieved"})
    assert plan_gain(CANDS, ACTED, full, retrieved, scores) == plan_gain(CANDS, ACTED, full, CFG)
    t = gain_table(CANDS, ACTED, TWO, CFG, scores=scores)
    assert t[TWO.levels.index(100), TWO.levels.index(50)] == pytest.approx(1 / math.log2(3) + 1.0)


def record(rid: str, budgets: dict[str, int], cands: list[Candidate], fetched: dict[str, int] | None = None,
           shadow: bool = False, features: list[float] | None = None) -> RequestRecord:
    return RequestRecord(request_id=rid, ts=0.0, query="q", features=features or [0.0],
                         plan=PlanRecord(budgets=budgets, propensity=0.5, policy_version="v", shadow=shadow),
                         candidates=cands, shown=[c.item_id for c in cands[:10]], ranker_version="r",
                         fetched=fetched or {})


def test_sub_plan_credit_from_a_served_plan_is_exact():
    """A served plan's log gives every sub-plan's gain, the same as a full (shadow) log would."""
    rng = np.random.default_rng(0)
    strategies = ["lexical", "dense"]
    full = [Candidate(f"i{k}", {s: Hit(r, 0.0) for s in strategies if (r := int(rng.integers(1, 101))) <= 100})
            for k in range(60)]
    # make ranks unique per strategy, as a real list is
    for s in strategies:
        for rank, c in enumerate(sorted(full, key=lambda c: c.hits[s].rank), 1):
            c.hits[s] = Hit(rank, 0.0)
    acted = {c.item_id: 1.0 for c in full[::4]}
    served_budgets = {"lexical": 25, "dense": 10}
    served = within(full, served_budgets)  # what a request served with this plan logged
    rec = record("r1", served_budgets, served)
    known = known_mask(rec.depth, returned_counts(served), TWO)
    exact = gain_table(full, acted, TWO, CFG)
    partial = gain_table(served, acted, TWO, CFG)
    assert known.sum() == 3 * 2  # lexical in {0,10,25} x dense in {0,10}
    assert np.allclose(partial[known], exact[known])
    assert not np.allclose(partial[~known], exact[~known])  # beyond the served plan the log cannot know
    scores = {c.item_id: float(k % 7) for k, c in enumerate(full)}  # the ranker's order of the full fetch
    ranked_exact = gain_table(full, acted, TWO, CFG, scores=scores)
    assert np.allclose(gain_table(served, acted, TWO, CFG, scores=scores)[known], ranked_exact[known])
    shadow = record("r2", served_budgets, full, fetched={"lexical": 100, "dense": 100}, shadow=True)
    assert known_mask(shadow.depth, returned_counts(full), TWO).all()
    assert {c.item_id for c in shadow.served()} == {c.item_id for c in served}


def test_a_short_list_is_known_at_every_deeper_budget():
    cands = [cand("a", lexical=1), cand("b", lexical=2)]
    k = known_mask({"lexical": 25, "dense": 0}, returned_counts(cands), TWO)
    assert k[:, 0].all() and not k[:, 1:].any()


def synthetic_bandit(n: int, seed: int):
    """Contexts with one feature x in {0, 1}: lexical finds the acted item when x = 0, dense when x = 1."""
    rng = np.random.default_rng(seed)
    recs, events = [], {}
    for t in range(n):
        x = int(rng.integers(0, 2))
        good = "dense" if x else "lexical"
        other = "lexical" if x else "dense"
        full = [Candidate("hit", {good: Hit(int(rng.integers(1, 8)), 1.0)}),
                *[Candidate(f"o{j}", {other: Hit(j, 1.0)}) for j in range(1, 101)]]
        rid = f"r{t}"
        shadow = t % 4 == 0
        budgets = {"lexical": 10, "dense": 0} if rng.random() < 0.5 else {"lexical": 0, "dense": 10}
        logged = full if shadow else within(full, budgets)
        recs.append(record(rid, budgets, logged, {"lexical": 100, "dense": 100} if shadow else None, shadow,
                           [float(x)]))
        events[rid] = [event("hit", "click", rid=rid)] if any(c.item_id == "hit" for c in within(full, budgets)) \
            else []
    return recs, events


def test_reward_model_completes_tables_from_full_information_contexts():
    recs, events = synthetic_bandit(200, 1)
    cfg = RewardConfig(price_per_10ms=0.0)
    exp = experience(recs, events, TWO, cfg, COST)
    assert exp.full_information == 50 and 0 < exp.known_share < 1
    model = RewardModel(alpha=1e-3).fit([np.array([0.0])] * 2 + [np.array([1.0])] * 2,
                                        [np.full((5, 5), 1.0), np.full((5, 5), 1.0), np.full((5, 5), 3.0),
                                         np.full((5, 5), 3.0)], [np.ones((5, 5), bool)] * 4)
    model.min_full = 1
    assert model.predict(np.array([0.5]))[2, 2] == pytest.approx(2.0, abs=1e-3)
    part = np.zeros((5, 5))
    part[0, 1] = 2.0  # one known plan, 1 above the prediction for x = 0
    known = np.zeros((5, 5), bool)
    known[0, 1] = True
    done = model.complete(np.array([0.0]), part, known)
    assert done[0, 1] == 2.0 and done[3, 3] == pytest.approx(2.0, abs=1e-3) and done[0, 0] == 0.0


def test_dr_against_exact_values_on_a_synthetic_bandit():
    """DR with the reward model's tables estimates a policy's value; the exact value is known."""
    recs, events = synthetic_bandit(800, 2)
    cfg = RewardConfig(price_per_10ms=0.0)
    exp = experience(recs, events, TWO, cfg, COST)
    for d in exp.decisions:  # the logging policy: 50/50 between the two plans
        d.propensity = 0.5
    # target: lexical 10 when x = 0, dense 10 when x = 1 (always finds the hit at rank <= 7)
    right = {0: TWO.index({"lexical": 10, "dense": 0}), 1: TWO.index({"lexical": 0, "dense": 10})}
    pi = np.array([float(TWO.index(d.budgets) == right[int(d.features[0])]) for d in exp.decisions])
    r = np.array([d.reward for d in exp.decisions])
    q_hat = np.array([d.model[TWO.index(d.budgets)] for d in exp.decisions])
    v_hat = np.array([d.model[right[int(d.features[0])]] for d in exp.decisions])
    est = doubly_robust(r, np.full(len(r), 0.5), pi, q_hat, v_hat)
    exact = np.mean([1 / math.log2(1 + c.hits[next(iter(c.hits))].rank) for rec in recs for c in
                     ([c for c in rec.candidates if c.item_id == "hit"] or [None]) if c is not None])
    assert est.ci_low - 0.02 <= exact <= est.ci_high + 0.02
    assert abs(est.value - exact) < 0.03


def test_env_rewards_are_gain_minus_priced_cost():
    gains = gain_table(CANDS, ACTED, TWO, CFG)
    ctx = LoggedContext(np.zeros(3), gains, returned_counts(CANDS), ("lexical", "dense"), "r1", True)
    env = ReplayBanditEnv([ctx], ["lexical", "dense"], cfg=CFG, cost=COST)
    check_env(env.replica(seed=0), skip_render_check=True)
    env.reset(options={"index": 0})
    _, r, done, _, info = env.step([1, 0])
    assert done and info["budgets"] == {"lexical": 10, "dense": 0}
    assert r == pytest.approx(1.0 - CFG.price(COST.plan_ms({"lexical": 10, "dense": 0},
                                                           returned=returned_counts(CANDS))))
    table = reward_table(gains, COST, TWO, CFG, returned_counts(CANDS))
    assert env.best_plan(ctx)[1] == pytest.approx(table.max())
    env.reprice(0.0)
    assert env.table(ctx)[1, 0] == pytest.approx(1.0)
    down = LoggedContext(np.zeros(3), gains, returned_counts(CANDS), ("lexical",), "r2")
    assert (env.table(down)[:, 3] == env.table(down)[:, 0]).all()  # dense is down: its budget changes nothing


def test_near_exploration_propensities_are_exact():
    pol = FixedPolicy(["lexical", "dense", "memory"], {"lexical": 25, "dense": 10, "memory": 0}, epsilon=0.3)
    ctx = PolicyContext(np.zeros(1), ("lexical", "dense", "memory"))
    p = pol.plan_probs(ctx)
    assert p.sum() == pytest.approx(1.0)
    near = pol.space.near(pol.budgets, ctx.available)
    assert len(near) == 5  # lexical 10/50, dense 0/25, memory 10
    assert all(pol.propensity(b, ctx.available) == pytest.approx(0.3 / 5) for b in near)
    draws = [tuple(pol.plan(ctx).budgets.values()) for _ in range(3000)]
    assert np.mean([d == (25, 10, 0) for d in draws]) == pytest.approx(0.7, abs=0.03)


def test_the_gates_bound_is_exact_where_known_and_takes_nothing_from_the_model():
    """`experience(bounds=True)`: a shadow request's bound is its exact table; a served request's
    bound values a plan at what its fetched lists held (the unfetched strategy adds nothing at
    any depth), where the completed table (DR's q) has the reward model's prediction."""
    recs, events = synthetic_bandit(200, 3)
    exp = experience(recs, events, TWO, RewardConfig(price_per_10ms=0.0), COST, bounds=True)
    assert all(d.bound is None for d in experience(recs, events, TWO, RewardConfig(), COST).decisions)
    lv, modelled = TWO.levels, 0
    for d in exp.decisions:
        bound, model = d.bound.reshape(len(lv), len(lv)), d.model.reshape(len(lv), len(lv))
        if d.table is not None:
            np.testing.assert_allclose(d.bound, d.table, atol=1e-6)
            continue
        served = next(s for s, b in d.budgets.items() if b)
        other = 1 - TWO.strategies.index(served)
        alone = [0, 0]
        alone[1 - other] = lv.index(10)  # the served plan
        for level in range(len(lv)):
            plus = list(alone)
            plus[other] = level  # the served plan plus the unfetched strategy at any depth
            assert bound[tuple(plus)] == pytest.approx(bound[tuple(alone)])
        unseen = [0, 0]
        unseen[other] = lv.index(10)
        if bound[tuple(unseen)] == 0 and model[tuple(unseen)] > 0.3:
            modelled += 1  # the other strategy's own plan: the model predicts a hit the bound does not credit
    assert modelled > 20


def test_ranked_credit_orders_each_plan_as_the_ranker_orders_its_own_strategies():
    """With one order (the whole fetch's), a dense-only plan is credited as if the ranker had
    seen lexical's evidence too; per support (`by_support`) it gets the position the ranker
    gives dense's list alone. Known answer: with lexical and dense the ranker puts `hit` first
    (gain 1); on dense's list alone it prefers `x`, so `hit` is second (1/log2 3)."""
    cands = [Candidate("a", {"lexical": Hit(1, 1.0)}), Candidate("hit", {"dense": Hit(1, 1.0)}),
             Candidate("x", {"dense": Hit(2, 1.0)})]
    both = {"hit": 3.0, "a": 2.0, "x": 1.0}
    per = {frozenset({"lexical", "dense"}): both, frozenset({"dense"}): {"x": 2.0, "hit": 1.0}}
    cfg = RewardConfig(position="ranked")
    one = gain_table(cands, {"hit": 1.0}, TWO, cfg, scores=both)
    own = gain_table(cands, {"hit": 1.0}, TWO, cfg, scores=both, by_support=per)
    dense10, lexical10_dense10 = (0, TWO.levels.index(10)), (TWO.levels.index(10),) * 2
    assert one[dense10] == pytest.approx(1.0) and own[dense10] == pytest.approx(1 / math.log2(3))
    assert one[lexical10_dense10] == own[lexical10_dense10] == pytest.approx(1.0)
    assert own[TWO.levels.index(10), 0] == 0.0  # lexical alone never finds the hit ({lexical}: the fallback order)


def test_the_support_scorer_featurizes_each_set_of_strategies_as_its_own_plan():
    """`learning.retrain.support_scorer` with the RRF fallback ranker: every non-empty set of the
    strategies that returned candidates gets scores for exactly what those strategies found,
    ordered as RRF over those lists alone."""
    from learning.retrain import support_scorer
    from ranking.model import FallbackRanker

    cands = [Candidate("a", {"lexical": Hit(1, 1.0), "dense": Hit(3, 1.0)}), Candidate("b", {"dense": Hit(1, 1.0)}),
             Candidate("c", {"lexical": Hit(2, 1.0)})]
    got = support_scorer(FallbackRanker(), {})(record("r1", {"lexical": 10, "dense": 10}, cands)).served
    assert set(got) == {frozenset({"lexical"}), frozenset({"dense"}), frozenset({"lexical", "dense"})}
    order = {k: sorted(v, key=v.get, reverse=True) for k, v in got.items()}
    assert order[frozenset({"lexical"})] == ["a", "c"] and order[frozenset({"dense"})] == ["b", "a"]
    assert order[frozenset({"lexical", "dense"})][0] == "a"  # found by both: fused first


def test_the_support_cache_serves_a_request_once_per_ranker_and_record():
    """A shared `support_cache` gives the same scores without calling the ranker again for the same
    record; a request whose shadow completion has landed (more candidates) and another ranker
    version are scored afresh."""
    from learning.retrain import support_scorer
    from ranking.model import FallbackRanker

    class Counting(FallbackRanker):
        def __init__(self, version: str):
            self.version, self.calls = version, 0

        def predict(self, X):
            self.calls += 1
            return super().predict(X)

    cands = [Candidate("a", {"lexical": Hit(1, 1.0), "dense": Hit(3, 1.0)}), Candidate("b", {"dense": Hit(1, 1.0)})]
    cache: dict = {}
    ranker = Counting("v1")
    first = support_scorer(ranker, {}, cache)(record("r1", {"lexical": 10, "dense": 10}, cands))
    again = support_scorer(ranker, {}, cache)(record("r1", {"lexical": 10, "dense": 10}, cands))
    assert again == first and ranker.calls == 1
    grown = record("r1", {"lexical": 10, "dense": 10}, [*cands, Candidate("c", {"lexical": Hit(2, 1.0)})])
    assert "c" in support_scorer(ranker, {}, cache)(grown).served[frozenset({"lexical"})] and ranker.calls == 2
    other = Counting("v2")
    assert support_scorer(other, {}, cache)(record("r1", {"lexical": 10, "dense": 10}, cands)) == first
    assert other.calls == 1 and len(cache) == 3


def test_a_deeper_fetch_does_not_change_the_served_plans_order():
    """A lookahead or shadow fetch logs lists deeper than the plan served. The served plan must
    still be valued in the order its user saw (its strategies featurized at the served depths),
    and only the plans beyond those depths in the order of the deeper lists. Known answer, with
    the RRF fallback ranker: served lexical 10 + dense 10, `a` (lexical 2) is third, behind
    `b` and `c` (each first of one list); with dense fetched 100 deep, `a` is also dense's 20th, and any plan taking dense
    past 20 ranks `a` first."""
    from learning.retrain import support_scorer
    from ranking.model import FallbackRanker

    cands = [Candidate("a", {"lexical": Hit(2, 1.0), "dense": Hit(20, 1.0)}), Candidate("b", {"dense": Hit(1, 1.0)}),
             Candidate("c", {"lexical": Hit(1, 1.0)})]
    rec = record("r1", {"lexical": 10, "dense": 10}, cands, fetched={"lexical": 100, "dense": 100})
    orders = support_scorer(FallbackRanker(), {})(rec)
    both = frozenset({"lexical", "dense"})
    assert both in orders.deep and dict(orders.depth) == {"lexical": 10, "dense": 10}
    cfg = RewardConfig(position="ranked")
    at = {b: TWO.levels.index(b) for b in (10, 25, 100)}
    lex, den = TWO.strategies.index("lexical"), TWO.strategies.index("dense")

    def plan(lexical: int, dense: int) -> tuple[int, int]:
        idx = [0, 0]
        idx[lex], idx[den] = at[lexical], at[dense]
        return tuple(idx)
    table = gain_table(rec.candidates, {"a": 1.0}, TWO, cfg, scores={"a": 1.0}, by_support=orders)
    served_order = sorted(orders.served[both], key=lambda i: -orders.served[both][i])
    assert served_order.index("a") == 2 and table[plan(10, 10)] == pytest.approx(1 / math.log2(4))
    assert table[plan(10, 25)] == table[plan(100, 100)] == pytest.approx(1.0)  # a: lexical 2 + dense 20, first
    flat = gain_table(rec.candidates, {"a": 1.0}, TWO, cfg, scores={"a": 1.0}, by_support=dict(orders.deep))
    assert flat[plan(10, 10)] == pytest.approx(1.0)  # the deep order alone overrates the served plan


def test_query_labels_take_the_max_or_the_rate_over_the_requests_that_showed_an_item():
    """Four requests of query "q" show a, b and c. "a" is clicked in three of them, "b" once (a stray
    click), "c" never. 'max' labels a and b alike (1.0); 'rate' labels a 3/4 and b 1/4, and c not at all.
    Fails if 'rate' divided by the requests of the query instead of those that showed the item, or
    if a stray click counted as much as a steady one."""
    from rl.experience import query_positives

    reqs = [record(f"r{n}", {"lexical": 10}, CANDS) for n in range(4)]
    reqs.append(record("r4", {"lexical": 10}, [cand("z", lexical=1)]))  # shows only z: no say on a, b, c
    events = {f"r{n}": [event("a", "click", rid=f"r{n}")] for n in range(3)}
    events["r3"] = [event("b", "click", rid="r3")]
    assert query_positives(reqs, events, CFG) == {"q": {"a": 1.0, "b": 1.0}}
    rate = query_positives(reqs, events, CFG.model_copy(update={"query_labels": "rate"}))
    assert rate == {"q": {"a": pytest.approx(0.75), "b": pytest.approx(0.25)}}
