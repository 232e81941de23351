"""Held-out evaluation: after the stream, every system answers the held-out queries.

Per system and query: the plan (ltrr's trained serving policy, without its shadow
share; a static plan; or the per-query oracle), the plan's union of candidates, the
ranker's order of it (RRF's own fused order for `rrf`), and
- candidate recall: the share of the query's relevant items that are in the union;
- nDCG@10 of the ranked union (ir-measures);
- candidates fetched (sum over called strategies of min(budget, items returned)) and
  strategies called;
- latency: the slowest called strategy (they run concurrently) plus the ranker, in ms.
"""
from __future__ import annotations

import statistics
from typing import Any

import ir_measures
import numpy as np
from ir_measures import nDCG
from tqdm import tqdm

from core.events import EVENT_WEIGHTS
from ltrr.bench.stream import StreamConfig, StreamResult
from ltrr.bench.workload import TOP, Workload, fan_out, median_latency, ranked, with_memory
from ltrr.clicks import ClickModel
from ranking.fusion import rrf_sum
from retrievers import STRATEGIES, Query
from rl.policy import ActionSpace, PolicyContext, ShadowPolicy
from rl.reward import candidates_under_plan, plan_grid, reward_table


def _ndcg(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> float:
    qrels = {q: r for q, r in qrels.items() if q in run}
    scored = {q: {i: float(len(items) - n) for n, i in enumerate(items)} for q, items in run.items()}
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, scored)[nDCG @ 10])


def evaluate_heldout(wl: Workload, res: StreamResult, cfg: StreamConfig, progress: bool = True) -> dict[str, dict]:
    judged = sorted(wl.heldout.judged().items())
    fan_out(wl, [t for _, t in judged], progress)
    latency = median_latency(wl)
    space = ActionSpace(STRATEGIES)
    grid = plan_grid(space)
    policy = res.policy.base if isinstance(res.policy, ShadowPolicy) else res.policy
    clicker = ClickModel(seed=cfg.seed + 1)
    systems = [*res.plans, "ltrr", "oracle"]
    rows: dict[str, dict[str, list]] = {s: {"recall": [], "fetched": [], "called": [], "ms": []} for s in systems}
    runs: dict[str, dict[str, list[str]]] = {s: {} for s in systems}
    for n, (qid, text) in enumerate(tqdm(judged, desc=f"{wl.name}: held-out", unit="query", disable=not progress)):
        fo = wl.fanout[text]
        full, returned = fo.candidates, fo.returned
        if res.memory is not None:  # the memory strategy as the stream's feedback left it
            learned = res.memory.retrieve(Query(text=text), TOP)
            full, returned = with_memory(fo.candidates, learned), {**fo.returned, "memory": len(learned)}
        rel = {i for i, g in wl.heldout.qrels.get(qid, {}).items() if g > 0}
        plans = dict(res.plans)
        hist = res.stats.context_history(f"user-{n % cfg.users}", text)
        x = res.featurizer.featurize(text, hist)
        plans["ltrr"] = policy.plan(PolicyContext(features=x, available=tuple(STRATEGIES))).budgets
        shown = ranked(wl, text, fo.candidates)[0][:10]
        acted: dict[str, float] = {}
        for e in clicker.simulate(shown, wl.heldout.qrels.get(qid, {})):
            acted[e.item_id] = max(acted.get(e.item_id, 0.0), EVENT_WEIGHTS[e.type])
        table = reward_table(full, acted, latency, space, cfg.reward).ravel()
        best = int(np.argmax(table[1:])) + 1
        plans["oracle"] = {s: int(b) for s, b in zip(STRATEGIES, grid[best])}
        for system, budgets in plans.items():
            cands = candidates_under_plan(full, budgets)
            got = {c.item_id for c in cands}
            if system == "rrf":  # RRF over the plan's own lists (lexical and dense), not the full fan-out's
                order, ms = [c.item_id for c in sorted(cands, key=lambda c: (-rrf_sum(c.hits), c.item_id))], 0.0
            else:
                order, ms = ranked(wl, text, cands) if cands else ([], 0.0)
            called = [s for s, b in budgets.items() if b > 0]
            runs[system][qid] = order[:10] or ["__none__"]
            r = rows[system]
            r["recall"].append(len(rel & got) / len(rel) if rel else 0.0)
            r["fetched"].append(sum(min(b, returned[s]) for s, b in budgets.items() if b > 0))
            r["called"].append(len(called))
            r["ms"].append(max((fo.latency_ms[s] for s in called), default=0.0) + ms)
    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        r = rows[system]
        out[system] = {"candidate_recall": round(float(np.mean(r["recall"])), 4),
                       "ndcg@10": round(_ndcg(wl.heldout.qrels, runs[system]), 4),
                       "candidates_per_query": round(float(np.mean(r["fetched"])), 1),
                       "strategies_per_query": round(float(np.mean(r["called"])), 2),
                       "p50_ms": round(statistics.median(r["ms"]), 2)}
    return out
