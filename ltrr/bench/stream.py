"""The bench's stream: ltrr serving and learning online, and fixed plans on the same users.

ltrr is a `BenchService` (the service's pipeline, feedback store, policy and retrain code):
it starts on the cold-start fixed plan with near-greedy epsilon and off-path shadow
exploration, and retrains every `retrain_every` requests on everything it logged. Each
`compare` plan is scored on the same request: its lists from the same world, ranked by the
same ranker, shown to the same user (`World.clicks`, seeded by the request). A request's
reward is `rl.reward.plan_reward` of what the system served, on what its user did, with
the world's cost model at that moment: gain of the acted items at the positions the user
saw them, minus the price of the plan's measured compute.

Traffic: traffic-split queries with Zipf repeats; `pools` switches the query pool at a
drift's change (`ltrr.bench.world`).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from core.records import EventRecord
from ltrr.bench.service import BenchService
from ltrr.bench.workload import Workload, fan_out, ranked
from ltrr.bench.world import World, is_new, query_kind
from rl.policy import DEFAULT_BUDGETS
from rl.reward import RewardConfig, plan_reward
from rl.serving import PolicyArgs
from rl.train import PPOConfig

T0 = 1_700_000_000.0  # the stream's first timestamp; requests are 3 s apart


class StreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(1500, ge=50, description="requests in the training stream")
    retrain_every: int = Field(500, ge=20, description="retrain the bandit after this many requests")
    zipf: float = Field(1.1, gt=0, description="Zipf exponent of query popularity (repeats)")
    users: int = Field(50, ge=1, description="simulated users")
    seed: int = Field(0, description="seed of the stream, the users and the policies")
    policy: PolicyArgs = Field(default_factory=lambda: PolicyArgs(epsilon=0.1, shadow_share=0.15,
                                                                  shadow_share_trained=0.1),
                               description="ltrr's serving policy settings (the service's own PolicyArgs)")
    ppo: PPOConfig = Field(default_factory=lambda: PPOConfig(iterations=3),
                           description="PPO after the full-information warm start")


@dataclass
class StreamResult:
    rewards: dict[str, np.ndarray]  # system ("ltrr" or a compare plan's name) -> reward per request
    service: BenchService
    budgets: list[dict[str, int]] = field(default_factory=list)  # ltrr's plan per request
    retrains: list[dict[str, Any]] = field(default_factory=list)


def pools(wl: Workload, drift: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(queries before the change, after it) from the traffic split."""
    judged = sorted(wl.traffic.judged().items())
    if drift is None or drift.scenario in ("latency", "failure"):
        return judged, judged
    if drift.scenario == "new_items":
        fresh = [(q, t) for q, t in judged if any(g > 0 and is_new(i, drift.new_share)
                                                  for i, g in wl.traffic.qrels[q].items())]
        return judged, fresh if len(fresh) >= 5 else judged
    kinds = sorted({query_kind(wl, q, t) for q, t in judged})
    first = set(kinds[:max(1, len(kinds) // 2)])
    before = [(q, t) for q, t in judged if query_kind(wl, q, t) in first]
    after = [(q, t) for q, t in judged if query_kind(wl, q, t) not in first]
    return (before, after) if before and after else (judged, judged)


def _draws(pool: list[tuple[str, str]], n: int, zipf: float, rng: np.random.Generator) -> list[tuple[str, str]]:
    weights = 1.0 / np.arange(1, len(pool) + 1) ** zipf
    order = rng.permutation(len(pool))
    return [pool[order[i]] for i in rng.choice(len(pool), size=n, p=weights / weights.sum())]


def _by_order(order: list[str]) -> dict[str, float]:
    """Scores that reproduce a shown order (`rl.reward`'s ranked positions)."""
    return {i: -float(k) for k, i in enumerate(order)}


def run_stream(wl: Workload, world: World, cfg: StreamConfig, reward: RewardConfig, work_dir: Path,
               compare: dict[str, dict[str, int]] | None = None, requests: int | None = None,
               progress: bool = True) -> StreamResult:
    n = requests or cfg.requests
    rng = np.random.default_rng(cfg.seed)
    at = world.drift.at if world.drift is not None else n
    before, after = pools(wl, world.drift)
    picks = _draws(before, at, cfg.zipf, rng) + _draws(after, n - at, cfg.zipf, rng)
    users = [f"user-{int(u)}" for u in rng.integers(0, cfg.users, size=n)]
    fan_out(wl, [t for _, t in picks], progress)
    args = cfg.policy.model_copy(update={"reward": reward})
    svc = BenchService(wl, world, work_dir, args, cfg.ppo)
    compare = compare if compare is not None else {"cold_start": dict(DEFAULT_BUDGETS)}
    rewards = {k: np.zeros(n) for k in ["ltrr", *compare]}
    budgets: list[dict[str, int]] = []

    def acted(events) -> dict[str, float]:
        out: dict[str, float] = {}
        for e in events:
            out[e.item_id] = max(out.get(e.item_id, -1e9), reward.weight(e.type))
        return out

    for t in tqdm(range(n), desc=f"{wl.name}: stream", unit="req", disable=not progress):
        world.t = t
        qid, text = picks[t]
        qrels = wl.traffic.qrels.get(qid, {})
        res = asyncio.run(svc.search(text, users[t], T0 + 3.0 * t))
        shown = [i for i, _ in res.ranked]
        events = world.clicks(t, shown, qrels)
        asyncio.run(svc.act(res.request_id, [EventRecord(event_id=f"{res.request_id}-{j}",
                                                        request_id=res.request_id, item_id=e.item_id,
                                                        type=e.type, position=e.position, ts=T0 + 3.0 * t + 1)
                                            for j, e in enumerate(events)]))
        called = {s: b for s, b in res.plan.budgets.items() if s not in res.failed}
        rewards["ltrr"][t] = plan_reward(res.candidates, acted(events), called, world.cost, reward, _by_order(shown),
                                         res.depth)
        budgets.append(res.plan.budgets)
        for name, plan in compare.items():
            cands = world.lists(text, plan)
            order = ranked(wl, text, cands)[0] if cands else []
            live = {s: b for s, b in plan.items() if s not in world.down()}
            rewards[name][t] = plan_reward(cands, acted(world.clicks(t, order[:10], qrels)), live, world.cost, reward,
                                           _by_order(order))
        world.learn(text, events)
        if (t + 1) % cfg.retrain_every == 0 and t + 1 < n:
            row = svc.retrain(t + 1)
            if progress:
                c = row["comparison"]
                tqdm.write(f"{wl.name}: retrain at {t + 1} on {row['trained_on']} requests "
                           f"({row['full_information']} full-information); {row['estimator']} candidate "
                           f"{c['target']:.3f} vs serving {c['serving']:.3f} -> "
                           f"{'promote' if row['promoted'] else 'keep'}")
    return StreamResult(rewards, svc, budgets, svc.retrains)
