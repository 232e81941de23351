"""The cost-quality frontier on held-out queries: static plans as points, ltrr's points, intervals.

Every system answers every held-out query: its plan's lists (the full fan-out cut to the
plan, with the memory strategy as the stream's users left it), ranked by the workload's
ranker (RRF's own fused order for `rrf`), scored by nDCG@10 against the qrels
(ir-measures) and by candidate recall; its cost is the measured compute of the plan
(`rl.cost.CostModel.plan_ms` with the real union size), in ms per request.

The static cloud (`static_plans`): every non-empty subset of the strategies with one
shared budget level (63 subsets x 4 levels = 252 plans, the grid's "diagonal"), plus a
seeded sample of mixed-level plans. Intervals are percentile bootstraps over queries
(95 %), and "dominated" uses the paired bootstrap of the per-query difference: a static
plan dominates an ltrr point when it costs no more and its nDCG@10 is higher with the
whole paired 95 % interval above 0.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ir_measures
import numpy as np
from ir_measures import nDCG

from core.records import best_first
from ltrr.bench.workload import TOP, Workload, fan_out, with_memory
from ranking.features import PlanFeaturizer
from ranking.fusion import rrf_sum
from retrievers import STRATEGIES, Query
from rl.cost import CostModel
from rl.policy import LEVELS

B = 1000  # bootstrap resamples


def static_plans(mixed: int, seed: int = 0) -> dict[str, dict[str, int]]:
    """The static cloud (see the module docstring), keyed by a readable name."""
    plans: dict[str, dict[str, int]] = {}
    for r in range(1, len(STRATEGIES) + 1):
        for subset in itertools.combinations(STRATEGIES, r):
            for b in LEVELS[1:]:
                plans[name_of({s: (b if s in subset else 0) for s in STRATEGIES})] = \
                    {s: (b if s in subset else 0) for s in STRATEGIES}
    rng = np.random.default_rng(seed)
    while mixed > 0:
        p = {s: int(rng.choice(LEVELS)) for s in STRATEGIES}
        if any(p.values()) and name_of(p) not in plans:
            plans[name_of(p)] = p
            mixed -= 1
    return plans


def name_of(plan: Mapping[str, int]) -> str:
    return "+".join(f"{s}{b}" for s, b in plan.items() if b > 0) or "none"


@dataclass
class Point:
    """One system on the held-out queries."""

    name: str
    cost_ms: np.ndarray  # per query
    ndcg: np.ndarray  # per query
    recall: np.ndarray
    strategies: np.ndarray  # strategies called per query

    def row(self, rng: np.random.Generator) -> dict:
        lo, hi = bootstrap(self.ndcg, rng)
        return {"cost_ms": round(float(self.cost_ms.mean()), 3), "strategies": round(float(self.strategies.mean()), 3),
                "ndcg@10": round(float(self.ndcg.mean()), 4), "ndcg_ci": [round(lo, 4), round(hi, 4)],
                "recall": round(float(self.recall.mean()), 4)}


def bootstrap(x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    idx = rng.integers(0, len(x), size=(B, len(x)))
    means = x[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


class Heldout:
    """The held-out queries with every strategy's lists fetched once, and the scorer."""

    def __init__(self, wl: Workload, memory, max_queries: int, progress: bool = True):
        judged = sorted(wl.heldout.judged().items())[:max_queries]
        fan_out(wl, [t for _, t in judged], progress)
        self.wl, self.queries = wl, judged
        self.full = {t: with_memory(wl.fanout[t].candidates, memory.retrieve(Query(text=t), TOP)) for _, t in judged}

    def evaluate(self, name: str, plan_of: Callable[[str, str], Mapping[str, int]], cost: CostModel,
                 fused: bool = False) -> Point:
        """One system: `plan_of(qid, text)` gives its plan per query."""
        return self.evaluate_many({name: plan_of}, cost, {name} if fused else set())[name]

    def evaluate_many(self, systems: Mapping[str, Callable[[str, str], Mapping[str, int]]], cost: CostModel,
                      fused: set[str] = frozenset()) -> dict[str, Point]:
        """Every system on every held-out query. Per query, each plan's candidates are featurized
        as `ranking.model.rank` does (features are relative to the plan's own lists), and all
        plans are scored in one ranker call: the same order as ranking each plan alone, without
        paying the ranker's per-call overhead hundreds of times."""
        runs: dict[str, dict[str, dict[str, float]]] = {n: {} for n in systems}
        rows: dict[str, dict[str, list[float]]] = {n: {"ms": [], "rec": [], "called": []} for n in systems}
        for qid, text in self.queries:
            rel = {i for i, g in self.wl.heldout.qrels[qid].items() if g > 0}
            plans = {n: dict(f(qid, text)) for n, f in systems.items()}
            feats = PlanFeaturizer(text, self.full[text], self.wl.catalog)
            done = {n: feats.rows(p) for n, p in plans.items()}  # no Candidate objects: ids are enough
            got = {n: [feats.ids[i] for i in r] for n, (r, _) in done.items()}
            names = [n for n in systems if got[n] and n not in fused]
            blocks = [done[n][1] for n in names]
            scores = np.split(self.wl.ranker.predict(np.vstack(blocks)), np.cumsum([len(b) for b in blocks])[:-1]) \
                if blocks else []
            by_name = dict(zip(names, scores))
            for n, ids in got.items():
                if n in fused:
                    cands = feats.of(plans[n])[0]
                    order = [c.item_id for c in sorted(cands, key=lambda c: (-rrf_sum(c.hits), c.item_id))]
                else:
                    order = [i for i, _ in best_first(zip(ids, by_name[n].tolist()))] if ids else []
                runs[n][qid] = {i: float(10 - k) for k, i in enumerate(order[:10])} or {"__none__": 0.0}
                rows[n]["rec"].append(len(rel.intersection(ids)) / len(rel))
                rows[n]["ms"].append(cost.plan_ms(plans[n], n_candidates=len(ids)))
                rows[n]["called"].append(sum(1 for b in plans[n].values() if b > 0))
        qrels = {q: self.wl.heldout.qrels[q] for q, _ in self.queries}
        out = {}
        for n in systems:
            per = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, runs[n])}
            ndcg = np.array([per.get(q, 0.0) for q, _ in self.queries])
            out[n] = Point(n, np.array(rows[n]["ms"]), ndcg, np.array(rows[n]["rec"]), np.array(rows[n]["called"]))
        return out


def pareto(points: list[Point]) -> list[Point]:
    """The static points no other point beats on both mean cost and mean nDCG@10, by cost."""
    out, best = [], -np.inf
    for p in sorted(points, key=lambda p: (p.cost_ms.mean(), -p.ndcg.mean())):
        if p.ndcg.mean() > best:
            out.append(p)
            best = p.ndcg.mean()
    return out


def dominated_by(point: Point, statics: list[Point], rng: np.random.Generator) -> list[dict]:
    """Static plans that cost no more than `point` and beat it beyond the paired 95 % interval."""
    out = []
    for s in statics:
        if s.cost_ms.mean() > point.cost_ms.mean() or s.ndcg.mean() <= point.ndcg.mean():
            continue
        lo, hi = bootstrap(s.ndcg - point.ndcg, rng)
        if lo > 0:
            out.append({"plan": s.name, "cost_ms": round(float(s.cost_ms.mean()), 3),
                        "ndcg@10": round(float(s.ndcg.mean()), 4), "diff_ci": [round(lo, 4), round(hi, 4)]})
    return out


def best_within(point: Point, statics: list[Point], rng: np.random.Generator) -> dict | None:
    """The best static plan that costs no more than `point`, and ltrr's paired gain over it."""
    cheaper = [s for s in statics if s.cost_ms.mean() <= point.cost_ms.mean()]
    if not cheaper:
        return None
    s = max(cheaper, key=lambda s: s.ndcg.mean())
    lo, hi = bootstrap(point.ndcg - s.ndcg, rng)
    return {"plan": s.name, "cost_ms": round(float(s.cost_ms.mean()), 3), "ndcg@10": round(float(s.ndcg.mean()), 4),
            "gain": round(float((point.ndcg - s.ndcg).mean()), 4), "gain_ci": [round(lo, 4), round(hi, 4)]}
