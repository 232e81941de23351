"""`ltrr bench`: per workload, the stream, the frontier on held-out queries, and the drift scenarios.

1. Costs: every strategy timed at every budget level on real queries, and the ranker on
   unions of several sizes (`measure_costs`): the plans' prices, in ms.
2. Stream: ltrr serves `requests` simulated requests through the service's pipeline and
   retrains online (`ltrr.bench.stream`).
3. Frontier: the static cloud, full fan-out and RRF on the held-out queries; ltrr trained
   on the stream's logs (all of them, `rl.experience`) at budgets spread by `budget_shares`
   between the cheapest static plan's cost and full fan-out's, each at the price the
   trainer's search finds for it (`rl.warm_start`), serving its greedy plan; plans are
   credited by where the workload's ranker puts the acted items (`learning.retrain.logged_scores`,
   `rl.reward`) (`ltrr.bench.frontier`).
4. Drift (on `drift_workloads`): a fresh stream per scenario with the change half-way;
   ltrr against the frontier's plans scored on the same users (`ltrr.bench.world`).
"""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from learning.retrain import click_model, logged_scores, support_scorer
from ltrr.bench.frontier import Heldout, Point, best_within, dominated_by, pareto, static_plans
from ltrr.bench.stream import T0, StreamConfig, run_stream
from ltrr.bench.workload import TOP, Workload, fan_out, measure_costs
from ltrr.bench.world import SCENARIOS, Drift, World
from retrievers import STRATEGIES
from rl.bandit import BanditPolicy
from rl.cost import CostModel
from rl.experience import experience
from rl.features import DIM, FEATURE_NAMES
from rl.policy import DEFAULT_BUDGETS, ActionSpace
from rl.reward import RewardConfig
from rl.train import train_bandit

#: A frontier budget: this share of the way from the cheapest static plan's cost to full fan-out's
Share = Annotated[float, Field(gt=0, le=1)]


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stream: StreamConfig = Field(default_factory=StreamConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    budget_shares: tuple[Share, ...] = Field((0.02, 0.04, 0.07, 0.12, 0.2, 0.35, 0.55, 0.8),
                                             description="ltrr's frontier points: mean compute budgets, each the "
                                             "cheapest static plan's cost plus this share of the way to full fan-out's "
                                             "cost (denser at the cheap end, where the static cloud climbs fastest)")
    mixed_plans: int = Field(120, ge=0, description="mixed-level static plans added to the 252 uniform ones")
    cost_queries: int = Field(30, ge=2, description="queries timed per strategy and budget")
    call_overhead_ms: float = Field(3.5, ge=0, description="CPU ms of one strategy call besides the strategy's own "
                                    "work, added per called strategy: in the service each strategy is its own Serve "
                                    "deployment, and an empty call costs its replica 3.50-3.57 ms of CPU on this "
                                    "2-core machine (benchmarks/serve_floor.json, 2026-12-06; the ingress's side of "
                                    "the hop is not counted)")
    heldout_max: int = Field(300, ge=10, description="held-out queries evaluated")
    drift_workloads: int = Field(1, ge=0, description="run the drift scenarios on the first N workloads")
    drift_requests: int = Field(1200, ge=100, description="requests per drift stream (the change is half-way)")
    scenarios: tuple[str, ...] = Field(SCENARIOS)
    compare_max: int = Field(10, ge=1, description="frontier plans scored alongside ltrr in the drift streams")


def frontier(wl: Workload, svc, cost: CostModel, cfg: BenchConfig, work_dir: Path, progress: bool
             ) -> tuple[dict[str, Any], list[Point]]:
    rng = np.random.default_rng(cfg.stream.seed)
    shutil.rmtree(work_dir / "frontier", ignore_errors=True)  # an earlier run's artifacts (train_bandit never overwrites)
    held = Heldout(wl, svc.world.memory, cfg.heldout_max, progress)
    plans = static_plans(cfg.mixed_plans, cfg.stream.seed)
    got = held.evaluate_many({name: (lambda q, t, p=p: p) for name, p in plans.items()}, cost)
    statics = [got[name] for name in plans]
    full = held.evaluate("full_fanout", lambda q, t: {s: TOP for s in STRATEGIES}, cost)
    rrf = held.evaluate("rrf", lambda q, t: {s: (TOP if s in ("lexical", "dense") else 0) for s in STRATEGIES}, cost,
                        fused=True)
    space = ActionSpace(list(STRATEGIES))
    logged = list(svc.records.values())
    scores = logged_scores(logged, wl.ranker, wl.catalog)
    rescore = support_scorer(wl.ranker, wl.catalog, svc.support_cache)
    exp = experience(logged, svc.events, space, cfg.reward, cost, DIM, scores=scores, rescore=rescore,
                     clicks=click_model(logged, svc.events, cfg.reward, scores, rescore))
    # asked right after the stream (its clock: T0 + 3 s per request), not at the bench's wall-clock
    # time: the time-of-day features would otherwise lie outside everything the policy was trained on
    after = T0 + 3.0 * cfg.stream.requests
    features = {t: svc.featurizer.featurize(t, asyncio.run(svc.feedback.history(f"user-{n % cfg.stream.users}", t)),
                                            after) for n, (_, t) in enumerate(held.queries)}
    points, rows = [], []
    cheapest = min(float(s.cost_ms.mean()) for s in statics)
    for share in cfg.budget_shares:
        budget = cheapest + share * (float(full.cost_ms.mean()) - cheapest)
        art = train_bandit(exp.contexts, list(STRATEGIES), work_dir / "frontier", f"budget-{share:g}",
                           reward=cfg.reward.model_copy(update={"budget_ms": budget}), ppo=cfg.stream.ppo,
                           feature_names=FEATURE_NAMES, cost=cost)
        pol = BanditPolicy.load(art.path, epsilon=0.0)
        p = held.evaluate(f"ltrr@{share:g}", lambda q, t, pol=pol: pol.greedy(features[t], STRATEGIES), cost)
        points.append(p)
        rows.append({"price": round(art.meta["price_per_10ms"], 5), "budget_ms": round(budget, 3), **p.row(rng),
                     "best_static_within": best_within(p, statics, rng), "dominated_by": dominated_by(p, statics, rng)})
        if progress:
            tqdm.write(f"{wl.name}: ltrr at budget {budget:.1f} ms: {rows[-1]['cost_ms']} ms, nDCG@10 "
                       f"{rows[-1]['ndcg@10']}, vs best static within: {rows[-1]['best_static_within']}")
    static_rows = [{"plan": s.name, **s.row(rng)} for s in statics]
    out = {"static": static_rows, "ltrr": rows, "full_fanout": full.row(rng), "rrf": rrf.row(rng),
           "pareto": [s.name for s in pareto(statics)], "heldout_queries": len(held.queries),
           "training": {"requests": len(exp.contexts), "full_information": exp.full_information,
                        "known_plan_share": round(exp.known_share, 4)}}
    reach = [r for r in rows if r["ndcg@10"] >= out["full_fanout"]["ndcg@10"] - 0.01]
    out["reaches_full_fanout"] = min(reach, key=lambda r: r["cost_ms"])["cost_ms"] if reach else None
    return out, [*statics, full, rrf, *points]


def drift(wl: Workload, cost: CostModel, cfg: BenchConfig, statics: list[Point], work_dir: Path,
          progress: bool) -> dict[str, Any]:
    """Each scenario: ltrr against the frontier's plans, reward after the change."""
    front = pareto([p for p in statics if not p.name.startswith("ltrr") and p.name not in ("rrf",)])
    pick = [front[int(i)] for i in np.unique(np.linspace(0, len(front) - 1, min(cfg.compare_max, len(front)))
                                             .round().astype(int))]
    plans = {p.name: _parse(p.name) for p in pick if p.name != "full_fanout"}
    plans["cold_start"] = dict(DEFAULT_BUDGETS)
    n, at = cfg.drift_requests, cfg.drift_requests // 2
    stream = cfg.stream.model_copy(update={"retrain_every": max(100, n // 6)})
    out: dict[str, Any] = {}
    for scenario in cfg.scenarios:
        world = World(wl, cost, cfg.stream.seed + 1, Drift(scenario, at, strategy="lexical"))
        res = run_stream(wl, world, stream, cfg.reward, work_dir / f"drift-{scenario}", plans, n, progress)
        post = {k: float(v[at:].mean()) for k, v in res.rewards.items()}
        pre = {k: float(v[:at].mean()) for k, v in res.rewards.items() if k != "ltrr"}
        best_fixed = max((k for k in post if k != "ltrr"), key=post.get)
        pre_best = max(pre, key=pre.get)
        w = 100
        roll = np.convolve(res.rewards["ltrr"][at:], np.ones(w) / w, mode="valid")
        ok = np.flatnonzero(roll >= post[best_fixed])
        out[scenario] = {"ltrr": round(post["ltrr"], 4), "best_fixed": round(post[best_fixed], 4),
                         "best_fixed_plan": best_fixed, "pre_change_best": round(post[pre_best], 4),
                         "pre_change_best_plan": pre_best, "change_at": at, "requests": n,
                         "recovery_requests": int(ok[0] + w) if len(ok) else None,
                         "retrains": res.retrains, "curves": {k: v.round(4).tolist() for k, v in res.rewards.items()}}
        res.service.close()
        if progress:
            tqdm.write(f"{wl.name}: drift {scenario}: ltrr {post['ltrr']:.4f}, best fixed {post[best_fixed]:.4f} "
                       f"({best_fixed}), pre-change best {post[pre_best]:.4f} ({pre_best})")
    return out


def _parse(name: str) -> dict[str, int]:
    plan = {s: 0 for s in STRATEGIES}
    for part in name.split("+"):
        s = part.rstrip("0123456789")
        plan[s] = int(part[len(s):])
    return plan


def bench_workload(wl: Workload, cfg: BenchConfig, state: Path, drift_too: bool, progress: bool
                   ) -> tuple[dict[str, Any], list[Point]]:
    start = last = time.perf_counter()
    phases: dict[str, float] = {}  # seconds of each phase, in the report: what the bench spends its time on

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[name], last = round(now - last, 1), now

    work = state / wl.name
    traffic = sorted(wl.traffic.judged().values())
    fan_out(wl, traffic[:cfg.cost_queries], progress)
    cost = measure_costs(wl, traffic[:cfg.cost_queries], cfg.call_overhead_ms, progress)
    lap("costs")
    world = World(wl, cost, cfg.stream.seed)
    res = run_stream(wl, world, cfg.stream, cfg.reward, work / "stream", None, None, progress)
    lap("stream")
    out, points = frontier(wl, res.service, cost, cfg, work, progress)
    res.service.close()
    lap("frontier")
    out["stream"] = {"requests": cfg.stream.requests, "retrains": res.retrains,
                     "reward": {k: round(float(v.mean()), 4) for k, v in res.rewards.items()}}
    out["cost_model"] = cost.model_dump(mode="json")
    out["drift"] = drift(wl, cost, cfg, points, work, progress) if drift_too else {}
    lap("drift")
    out["seconds"] = round(time.perf_counter() - start, 1)
    out["phase_seconds"] = phases
    return out, points
