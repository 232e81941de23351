"""Context features (rl/features.py), the history aggregates behind them, shadow exploration's
exact propensities and the OPE gate's plan distributions. No Ray, no indexes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from engine.feedback_stats import FeedbackStats, RequestInfo
from rl.features import DIM, FEATURE_NAMES, ContextFeaturizer, History, StrategyHistory, guess_language
from rl.policy import LEVELS, ActionSpace, FixedPolicy, PolicyContext, ShadowPolicy
from rl.promotion import LoggedDecision, estimate
from tests.helpers.catalogue import tiny_dataset


@pytest.fixture(scope="module")
def featurizer() -> ContextFeaturizer:
    ds = tiny_dataset()
    return ContextFeaturizer.from_catalog(ds.items, ds.schema)


def f(featurizer: ContextFeaturizer, query: str, **kw) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, featurizer.featurize(query, **kw).tolist()))


def test_layout_is_fixed_and_finite(featurizer):
    assert len(FEATURE_NAMES) == DIM == len(set(FEATURE_NAMES))
    for q in ["a", "Daft Punk", "x" * 500, "¿qué canciones de la playa?", "1998 ???"]:
        x = featurizer.featurize(q)
        assert x.shape == (DIM,) and x.dtype == np.float32 and np.isfinite(x).all()


def test_understanding_and_vocabulary_features(featurizer):
    ds = tiny_dataset()
    artist = next(it.fields["artist"] for it in ds.items if it.fields.get("artist"))
    exact = f(featurizer, artist)
    assert exact["qu_entity_exact"] == 1.0 and exact["qu_covered"] == 1.0 and exact["q_words_in_vocab"] == 1.0
    nonsense = f(featurizer, "zqxj vwkp")
    assert nonsense["qu_entity_exact"] == 0.0 and nonsense["qu_covered"] == 0.0
    assert nonsense["q_words_in_vocab"] == 0.0 and nonsense["q_trigram_in_vocab"] < exact["q_trigram_in_vocab"]
    assert f(featurizer, "songs from 1998")["qu_year"] == 1.0


def test_language_guess():
    assert guess_language("what is the best song of the year".split()) == "en"
    assert guess_language("canciones para la playa con amigos".split()) == "es"
    assert guess_language("daft punk".split()) == "und"


def test_time_features_follow_the_clock(featurizer):
    import time

    ts = time.mktime((2026, 11, 24, 6, 0, 0, 0, 0, -1))  # 06:00 local: hour angle pi/2
    x = f(featurizer, "jazz", ts=ts)
    assert x["time_hour_sin"] == pytest.approx(1.0, abs=1e-6) and x["time_hour_cos"] == pytest.approx(0.0, abs=1e-6)


def _request(rid: str, query: str, user: str, budgets: dict[str, int], found: dict[str, list[str]]) -> RequestRecord:
    cands = [Candidate(item_id=i, hits={s: Hit(1, 1.0) for s in ss}) for i, ss in found.items()]
    return RequestRecord(request_id=rid, ts=0.0, query=query, user_id=user,
                         plan=PlanRecord(budgets=budgets, propensity=1.0, policy_version="t"),
                         candidates=cands, shown=list(found), ranker_version="r")


def test_history_aggregates_feed_the_features(featurizer):
    stats = FeedbackStats()
    budgets = {"lexical": 10, "dense": 10, "memory": 0}
    for n in range(3):
        rec = _request(f"r{n}", "Chill Jazz!", "u1", budgets, {"a": ["lexical"], "b": ["dense", "lexical"]})
        info = RequestInfo.of(rec)
        stats.add_request(rec, info)
        if n < 2:  # two of three requests: the user clicks b (found by dense and lexical)
            stats.add_event(EventRecord(event_id=f"e{n}", request_id=f"r{n}", item_id="b", type="click", position=2,
                                        ts=0.0), info)
    h = stats.context_history("u1", "chill jazz")  # normalized like the logged query
    assert h.query == StrategyHistory(requests=3, events=2, chosen={"lexical": 3, "dense": 3},
                                      hits={"dense": 2, "lexical": 2})
    assert h.user.requests == 3 and h.overall.hits == {"dense": 2, "lexical": 2}
    assert stats.context_history("u2", "rock").query.requests == 0
    merged = History.merge([h, h])
    assert merged.query.hits == {"dense": 4, "lexical": 4} and merged.user.requests == 6
    assert merged.query.events == 4
    x = f(featurizer, "chill jazz", history=h)
    assert x["query_rate_dense"] == pytest.approx(2 / 4) and x["query_rate_memory"] == 0.0
    assert x["query_requests"] == pytest.approx(np.log1p(3) / 5)
    assert x["query_events"] == pytest.approx(np.log1p(2) / 5) and x["query_acted_before"] == 1.0
    assert f(featurizer, "rock", history=stats.context_history("u1", "rock"))["query_acted_before"] == 0

SMALL = ["lexical", "dense"]


def _ctx(available=tuple(SMALL)) -> PolicyContext:
    return PolicyContext(features=np.zeros(DIM, dtype=np.float32), available=available)


@pytest.mark.parametrize("available", [("lexical", "dense"), ("dense",)])
def test_shadow_mixture_propensities_are_exact(available):
    base = FixedPolicy(SMALL, {"lexical": 50, "dense": 10}, epsilon=0.2, seed=1)
    pol = ShadowPolicy(base, share=0.3, seed=2)
    ctx = _ctx(available)
    plans = [dict(zip(SMALL, b)) for b in itertools.product(LEVELS, repeat=2)]
    total = sum(pol.prob(b, ctx) for b in plans)
    assert total == pytest.approx(1.0, abs=1e-12)
    n = 20000
    counts: dict[tuple, int] = {}
    shadow = 0
    for _ in range(n):
        plan = pol.plan(ctx)
        assert plan.propensity == pytest.approx(pol.prob(plan.budgets, ctx), abs=1e-12)
        counts[tuple(plan.budgets.values())] = counts.get(tuple(plan.budgets.values()), 0) + 1
        shadow += plan.shadow
    assert shadow / n == pytest.approx(0.3, abs=0.015)
    for b in plans:
        p = pol.prob(b, ctx)
        assert counts.get(tuple(b.values()), 0) / n == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n) + 1e-9)
    # the distribution the OPE gate uses matches prob() plan by plan
    space = ActionSpace(SMALL)
    dist = pol.plan_probs(ctx)
    grid = space.grid()
    assert np.allclose(dist, [pol.prob(dict(zip(SMALL, map(int, row))), ctx) for row in grid])


def test_ope_of_the_logging_policy_recovers_its_mean_reward():
    """Evaluating the behaviour policy on its own logs: IPS weights are all 1."""
    space = ActionSpace(SMALL)
    pol = ShadowPolicy(FixedPolicy(SMALL, {"lexical": 25, "dense": 0}, epsilon=0.3, seed=3), 0.2, seed=4)
    rng = np.random.default_rng(0)
    logs = []
    for _ in range(500):
        plan = pol.plan(_ctx())
        logs.append(LoggedDecision(np.zeros(DIM, np.float32), plan.budgets, plan.propensity, float(rng.normal()),
                                   tuple(SMALL), plan.shadow))
    est = estimate(pol, logs, space, np.zeros(len(LEVELS) ** 2))
    mean = np.mean([d.reward for d in logs])
    assert est["ips"].value == pytest.approx(mean) and est["snips"].value == pytest.approx(mean)
    assert est["dr"].value == pytest.approx(mean)
