"""The bench's building blocks with known answers: memory's per-request list, the frontier's
Pareto set and paired dominance, the static cloud, and the drifting world."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


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


def point(name, costs, ndcg):
    from ltrr.bench.frontier import Point
    n = len(ndcg)
    return Point(name, np.full(n, float(costs)), np.asarray(ndcg, dtype=float), np.zeros(n), np.ones(n))


def test_pareto_and_paired_dominance():
    from ltrr.bench.frontier import best_within, dominated_by, pareto

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 200)
    cheap = point("cheap", 1.0, base)
    mid = point("mid", 2.0, base + 0.05)  # better on every query: beyond any interval
    worse = point("worse", 3.0, base + 0.02)
    noisy = point("noisy", 1.5, base + rng.normal(0.0, 0.3, 200) * 0.1 + 0.001)  # a tie, within noise
    assert [p.name for p in pareto([cheap, mid, worse, noisy])] in (["cheap", "noisy", "mid"], ["cheap", "mid"])
    ours = point("ltrr", 2.5, base + 0.01)
    got = dominated_by(ours, [cheap, mid, worse, noisy], rng)
    assert [d["plan"] for d in got] == ["mid"] and got[0]["diff_ci"][0] > 0
    assert dominated_by(point("ltrr", 1.9, base + 0.01), [cheap, mid, worse], rng) == []
    best = best_within(point("ltrr", 2.5, base + 0.08), [cheap, mid, worse], rng)
    assert best["plan"] == "mid" and best["gain"] == pytest.approx(0.03) and best["gain_ci"][0] > 0


def test_static_cloud_is_the_uniform_grid_plus_mixed_plans():
    from ltrr.bench.frontier import name_of, static_plans
    from ltrr.bench.run import _parse
    from retrievers import STRATEGIES

    plans = static_plans(mixed=20, seed=1)
    assert len(plans) == 63 * 4 + 20
    assert all(name_of(p) == n and _parse(n) == p for n, p in plans.items())
    full = {s: 100 for s in STRATEGIES}
    assert name_of(full) in plans and len(set(map(name_of, plans.values()))) == len(plans)


def test_world_drift_hides_new_items_and_fails_strategies():
    from core.records import Candidate, Hit
    from ltrr.bench.world import Drift, World, is_new

    class Memory:
        def retrieve(self, q, k):
            return []

    class Index:
        def load(self, name):
            return Memory()

    class Fanout:
        def __init__(self, cands):
            self.candidates = cands

    items = [f"i{j}" for j in range(200)]
    new = [i for i in items if is_new(i, 0.2)]
    assert 10 < len(new) < 70
    cands = [Candidate(i, {"lexical": Hit(r, 1.0), "dense": Hit(r, 1.0)}) for r, i in enumerate(items, 1)]

    class WL:
        index = Index()
        fanout = {"q": Fanout(cands)}
        traffic = SimpleNamespace(qrels={"q1": {"i1": 1, "i2": 0}})
        heldout = SimpleNamespace(qrels={"q2": {"i3": 2}})

    world = World(WL(), None, 0, Drift("new_items", at=10, new_share=0.2, reencode_after=5))
    assert world.clicker.max_grade == 2  # the labels' top grade over both splits, not ClickModel's default 3
    world.t = 0
    before = world.full("q")
    assert not {c.item_id for c in before} & set(new)
    assert sorted(c.hits["lexical"].rank for c in before) == list(range(1, len(before) + 1))  # re-numbered
    world.t = 12  # changed; dense not yet re-encoded
    seen = {c.item_id: set(c.hits) for c in world.full("q")}
    assert all(seen[i] == {"lexical"} for i in new)
    world.t = 15
    assert all({"lexical", "dense"} <= {s for s in c.hits} for c in world.full("q"))
    fail = World(WL(), None, 0, Drift("failure", at=5, strategy="dense"))
    fail.t = 6
    assert fail.down() == {"dense"} and all("dense" not in c.hits for c in fail.lists("q", {"lexical": 10,
                                                                                        "dense": 10}))
    u1 = fail.clicks(3, items[:10], {i: 3 for i in items[:10]})
    u2 = fail.clicks(3, items[:10], {i: 3 for i in items[:10]})
    assert [(e.item_id, e.type) for e in u1] == [(e.item_id, e.type) for e in u2]  # the same user for every system


def test_budget_shares_parse_or_say_what_is_wrong():
    from core.errors import BadRequest
    from ltrr.cli import _shares

    assert _shares("0.02,0.5,1") == (0.02, 0.5, 1.0)
    for bad in ("0.1,x", ""):
        with pytest.raises(BadRequest, match="comma-separated numbers"):
            _shares(bad)
