"""The bench's stream: ltrr learning online on the simulated traffic, and static baselines.

The traffic (`ltrr.bench.traffic.SimulatedTraffic`) gives each request the users' actions
and the reward of every plan on them (`rl.reward`: acted items in the plan's union,
discounted by the rank that found them, minus the candidate and latency cost of the
plan), so every system is scored on the same actions, paired request by request.

ltrr serves as the orchestrator does: features (`rl.features`) from its own feedback
aggregates (`FeedbackStats`, fed only with what it could observe: its plan's candidates
and the actions on them), a plan from `ShadowPolicy(base)` with exact propensities, a
cold-start fixed plan until the first training. Every `retrain_every` requests it
trains a PPO bandit on its shadow requests so far (`rl.train`), gates it with OPE on the
requests logged since (`rl.promotion.holdout_split`: the newest quarter of shadow contexts
is kept out of training, so the estimate is out of sample), and serves it if not worse.

Baselines score the same stream: each strategy alone at budget 100, full fan-out, RRF
(lexical + dense at 100), the best fixed plan in hindsight (the plan with the largest
total reward over the whole stream), and the per-request oracle (best non-empty plan).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from core.records import EventRecord, PlanRecord, RequestRecord
from engine.feedback_stats import FeedbackStats, RequestInfo
from ltrr.bench.traffic import SimulatedTraffic
from ltrr.bench.workload import TOP, Workload
from retrievers import STRATEGIES
from rl.env import LoggedContext
from rl.features import FEATURE_NAMES, ContextFeaturizer
from rl.policy import DEFAULT_BUDGETS, ActionSpace, FixedPolicy, PolicyContext, ShadowPolicy
from rl.promotion import LoggedDecision, gate, holdout_split, reward_model
from rl.reward import RewardConfig, candidates_under_plan
from rl.train import PPOConfig, train_bandit


class StreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(2000, ge=50, description="requests in the simulated stream")
    retrain_every: int = Field(400, ge=20, description="retrain the bandit after this many requests")
    shadow_share: float = Field(0.1, ge=0, le=1, description="shadow exploration share while the fixed plan serves")
    shadow_share_trained: float = Field(0.03, ge=0, le=1, description="shadow share once a trained bandit serves")
    epsilon: float = Field(0.01, ge=0, le=1, description="epsilon floor: share of uniformly random plans")
    temperature: float = Field(0.3, gt=0, le=10, description="the bandit samples from softmax(logits / temperature)")
    min_shadow: int = Field(40, ge=1, description="shadow requests needed before the first training")
    zipf: float = Field(1.1, gt=0, description="Zipf exponent of query popularity (repeats)")
    users: int = Field(50, ge=1, description="simulated users")
    seed: int = Field(0, description="seed of the stream, the clicks and the policies")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    ppo: PPOConfig = Field(default_factory=lambda: PPOConfig(iterations=20),
                           description="PPO after the full-information warm start (20 iterations suffice after it)")


@dataclass
class StreamResult:
    rewards: dict[str, np.ndarray]  # system -> reward per request
    plans: dict[str, dict[str, int]]  # static systems' plans (best_fixed found in hindsight)
    ltrr_budgets: list[dict[str, int]]
    retrains: list[dict[str, Any]] = field(default_factory=list)
    policy: Any = None
    featurizer: ContextFeaturizer | None = None
    stats: FeedbackStats | None = None
    memory: Any = None  # the memory retriever as the stream left it (learned from its feedback)
    tables: np.ndarray | None = None  # every request's reward table (requests, plans)
    keys: list[tuple[str, bool]] = field(default_factory=list)  # (query, acted on before) per request
    latency: dict[str, float] = field(default_factory=dict)  # per-strategy latency the plan costs used (ms)


def static_plans() -> dict[str, dict[str, int]]:
    zero = {s: 0 for s in STRATEGIES}
    plans = {s: {**zero, s: TOP} for s in STRATEGIES}
    plans["full_fanout"] = {s: TOP for s in STRATEGIES}
    plans["rrf"] = {**zero, "lexical": TOP, "dense": TOP}
    return plans


def run_stream(wl: Workload, cfg: StreamConfig, work_dir: Path, progress: bool = True) -> StreamResult:
    traffic = SimulatedTraffic(wl, cfg.requests, cfg.zipf, cfg.users, cfg.seed, cfg.reward, progress)
    space, grid = traffic.space, traffic.grid
    featurizer = ContextFeaturizer.from_catalog(wl.catalog.values(), wl.index.schema)
    shutil.rmtree(work_dir / "bandit", ignore_errors=True)  # the bench's own scratch: bandits of an earlier run
    stats = FeedbackStats()
    serving: Any = ShadowPolicy(FixedPolicy(STRATEGIES, DEFAULT_BUDGETS, cfg.epsilon, cfg.seed), cfg.shadow_share,
                                cfg.seed)
    statics = static_plans()
    static_idx = {k: space.index(b) for k, b in statics.items()}
    rewards = {k: np.zeros(cfg.requests) for k in [*statics, "ltrr", "oracle"]}
    tables = np.zeros((cfg.requests, len(grid)), dtype=np.float32)
    ltrr_budgets: list[dict[str, int]] = []
    pool: list[tuple[int, LoggedContext]] = []  # (request index, shadow context); its table is tables[index]
    logs: list[LoggedDecision] = []  # every request ltrr served, in order
    retrains: list[dict[str, Any]] = []
    keys: list[tuple[str, bool]] = []
    for req in traffic:
        t, text, table = req.t, req.text, req.table
        keys.append(req.group)
        tables[t] = table
        for k, i in static_idx.items():
            rewards[k][t] = table[i]
        rewards["oracle"][t] = table[1:].max()
        # ltrr: features from what it has observed, a plan, the reward of that plan
        hist = stats.context_history(req.user, text)
        x = featurizer.featurize(text, hist, ts=req.ts)
        ctx = PolicyContext(features=x, available=tuple(STRATEGIES))
        plan = serving.plan(ctx)
        a = space.index(plan.budgets)
        rewards["ltrr"][t] = table[a]
        ltrr_budgets.append(plan.budgets)
        cands = candidates_under_plan(req.candidates, plan.budgets)
        got = {c.item_id for c in cands}
        rid = f"r{t}"
        rec = RequestRecord.model_construct(
            request_id=rid, ts=req.ts, query=text, user_id=req.user, context={}, features=[],
            plan=PlanRecord.model_construct(budgets=plan.budgets, propensity=plan.propensity,
                                            policy_version=plan.policy_version, shadow=plan.shadow),
            failed=[], latency_ms={}, candidates=cands, shown=[], ranker_version=wl.ranker.version)
        info = RequestInfo.of(rec)
        stats.add_request(rec, info)
        for j, e in enumerate(req.events):
            if e.item_id in got:
                stats.add_event(EventRecord.model_construct(event_id=f"{rid}-{j}", request_id=rid, item_id=e.item_id,
                                                            type=e.type, position=e.position, ts=rec.ts), info)
        logs.append(LoggedDecision(x, plan.budgets, plan.propensity, float(table[a]), tuple(STRATEGIES),
                                     plan.shadow, table if plan.shadow else None))
        if plan.shadow:
            pool.append((t, LoggedContext(x, req.candidates, req.acted, traffic.latency, tuple(STRATEGIES), rid)))
        if (t + 1) % cfg.retrain_every == 0 and t + 1 < cfg.requests and len(pool) >= cfg.min_shadow:
            retrains.append(_retrain(wl, cfg, work_dir, pool, tables, logs, serving, space, t + 1, progress))
            if retrains[-1]["promoted"]:
                serving = retrains[-1].pop("policy")
            else:
                retrains[-1].pop("policy")
    best = int(np.argmax(tables[:, 1:].sum(axis=0))) + 1
    rewards["best_fixed"] = tables[:, best].astype(np.float64)
    statics["best_fixed"] = {s: int(b) for s, b in zip(STRATEGIES, grid[best])}
    return StreamResult(rewards, statics, ltrr_budgets, retrains, serving, featurizer, stats, traffic.memory, tables,
                        keys, traffic.latency)


def _retrain(wl: Workload, cfg: StreamConfig, work_dir: Path, pool: list[tuple[int, LoggedContext]],
             tables: np.ndarray, logs: list[LoggedDecision], serving: Any, space: ActionSpace, at: int,
             progress: bool) -> dict[str, Any]:
    """Train on the older shadow contexts; gate on every request since the first held-out one."""
    from rl.bandit import BanditPolicy

    start = time.perf_counter()
    version = f"{wl.name}-bandit-{at:06d}"
    n_hold = holdout_split(len(pool), cfg.min_shadow)
    train = pool[:len(pool) - n_hold]
    since = pool[len(pool) - n_hold][0] if n_hold else max(0, at - cfg.retrain_every)
    art = train_bandit([c for _, c in train], list(STRATEGIES), work_dir / "bandit", version, reward=cfg.reward,
                       ppo=cfg.ppo, feature_names=FEATURE_NAMES, progress=False)
    seconds = time.perf_counter() - start
    candidate = ShadowPolicy(BanditPolicy.load(art.path, epsilon=cfg.epsilon, seed=cfg.seed + at,
                                                  temperature=cfg.temperature),
                             cfg.shadow_share_trained, cfg.seed + at)
    decision = gate(candidate, serving, logs[since:], space, reward_model([tables[i] for i, _ in train]))
    decision["held_out"] = {"shadow_contexts": n_hold, "logs": len(logs) - since, "in_sample": n_hold == 0}
    if progress:
        cmp = decision["comparison"]
        tqdm.write(f"{wl.name}: retrain at {at}: {len(train)} shadow contexts (+{n_hold} held out), {seconds:.0f}s; "
                   f"{decision['estimator']} candidate {cmp['target']:.3f} vs serving {cmp['serving']:.3f} "
                   f"(CI of the difference {cmp['ci_low']:.3f}..{cmp['ci_high']:.3f}) -> "
                   f"{'promote' if decision['promote'] else 'keep'}")
    return {"at": at, "version": version, "shadow_contexts": len(train), "train_seconds": round(seconds, 1),
            "promoted": decision["promote"], "ope": decision, "policy": candidate}
