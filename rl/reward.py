"""The reward of a retrieval plan, recomputed offline from a shadow-exploration log.

Why this works: in a shadow request every strategy was called at its top budget (100)
and each candidate keeps its provenance (`Candidate.hits`: strategy -> rank).
A smaller plan `{s: b_s}` would have retrieved exactly the items some called strategy
ranked at or above its budget, so the reward of ANY plan follows from one log.

Definitions (what the bandit maximises; `rank` is 1-based):

    union(plan)  = {i : exists s with b_s > 0 and rank_s(i) <= b_s},
                   best_rank(i) = min of those rank_s(i)
    gain(plan)   = sum over acted items i in union(plan) of w_i * d(best_rank(i))
                   d(r) = 1/log2(1 + r) ("log2", default), 1/r ("reciprocal") or 1 ("none")
    cost(plan)   = candidate_cost * sum_s b_s / 100
                 + latency_cost * sum_{s : b_s > 0} latency_ms[s] / 100
    reward(plan) = gain(plan) - cost(plan)

`w_i` is the largest event weight among the item's feedback events (`acted_items`).
The empty plan retrieves nothing and costs nothing: its reward is exactly 0.
`latency_ms[s]` is the latency logged for s in the shadow request (at budget 100): a
slight over-estimate for smaller budgets, used for every budget > 0. A strategy missing
from `latency_ms` (e.g. it failed; callers mask it) costs no latency.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.events import EVENT_WEIGHTS, EventType
from core.records import Candidate, EventRecord
from rl.policy import ActionSpace

Discount = Literal["log2", "reciprocal", "none"]


class RewardConfig(BaseModel):
    """Weights of feedback events and prices of candidates and latency."""

    model_config = ConfigDict(extra="forbid")
    event_weights: dict[EventType, float] = Field(default_factory=lambda: dict(EVENT_WEIGHTS),
                                                  description="what an event on an item is worth (default: the "
                                                  "one table, `core.events.EVENT_WEIGHTS`)")
    candidate_cost: float = Field(0.05, ge=0, description="cost per 100 candidates fetched (sum of budgets)")
    latency_cost: float = Field(0.05, ge=0, description="cost per 100 ms of latency summed over called strategies")
    discount: Discount = Field("log2", description="rank discount: 1/log2(1+r), 1/r or none")

    def weight(self, event_type: str) -> float:
        """The weight of one event type (click, play, like, skip)."""
        return float(self.event_weights.get(event_type, EVENT_WEIGHTS[event_type]))

    def discount_of(self, rank: np.ndarray | float) -> np.ndarray:
        """d(rank) for 1-based ranks (vectorised)."""
        r = np.asarray(rank, dtype=np.float64)
        if self.discount == "log2":
            return 1.0 / np.log2(1.0 + r)
        if self.discount == "reciprocal":
            return 1.0 / r
        return np.ones_like(r)


def acted_items(events: Sequence[EventRecord], cfg: RewardConfig) -> dict[str, float]:
    """item_id -> the largest weight among its events. All events must share one request_id."""
    if len({e.request_id for e in events}) > 1:
        raise ValueError("acted_items takes the events of one request; got several request_ids")
    out: dict[str, float] = {}
    for e in events:
        w = cfg.weight(e.type)
        out[e.item_id] = max(out.get(e.item_id, w), w)
    return out


def union_under_plan(candidates: Sequence[Candidate], budgets: Mapping[str, int]) -> dict[str, int]:
    """item_id -> best rank, over the items the plan would have retrieved (see module doc)."""
    out: dict[str, int] = {}
    for c in candidates:
        ranks = [h.rank for s, h in c.hits.items() if 0 < budgets.get(s, 0) and h.rank <= budgets[s]]
        if ranks:
            out[c.item_id] = min(min(ranks), out.get(c.item_id, min(ranks)))
    return out


def plan_cost(budgets: Mapping[str, int], latency_ms: Mapping[str, float], cfg: RewardConfig) -> float:
    """candidate_cost * sum(b)/100 + latency_cost * sum(latency of called strategies)/100."""
    fetched = sum(b for b in budgets.values() if b > 0)
    lat = sum(latency_ms.get(s, 0.0) for s, b in budgets.items() if b > 0)
    return cfg.candidate_cost * fetched / 100.0 + cfg.latency_cost * lat / 100.0


def plan_reward(candidates: Sequence[Candidate], acted: Mapping[str, float], budgets: Mapping[str, int],
                latency_ms: Mapping[str, float], cfg: RewardConfig) -> float:
    """gain(plan) - cost(plan), as defined in the module docstring; 0.0 for the empty plan."""
    got = union_under_plan(candidates, budgets)
    gain = sum(float(w * cfg.discount_of(got[i])) for i, w in acted.items() if i in got)
    return gain - plan_cost(budgets, latency_ms, cfg)


def plan_grid(space: ActionSpace) -> np.ndarray:
    """All plans in the order of `reward_table(...).ravel()` (see `ActionSpace.grid`)."""
    return space.grid()


def candidates_under_plan(candidates: Sequence[Candidate], budgets: Mapping[str, int]) -> list[Candidate]:
    """The candidates the plan would have retrieved, each keeping only the hits the plan
    produces: what a request served with `budgets` would have logged."""
    out = []
    for c in candidates:
        hits = {s: h for s, h in c.hits.items() if budgets.get(s, 0) >= h.rank}
        if hits:
            out.append(Candidate(c.item_id, hits))
    return out


def reward_table(candidates: Sequence[Candidate], acted: Mapping[str, float], latency_ms: Mapping[str, float],
                 space: ActionSpace, cfg: RewardConfig, chunk: int = 64) -> np.ndarray:
    """The reward of every plan, shape (L,)*n: `table[i_1..i_n]` = reward of {s_k: levels[i_k]}.

    Includes the empty plan (all indices 0, reward 0). Vectorised: since d is decreasing,
    an item's gain under a plan is the max over strategies of its per-strategy gain
    G[i, s, l] = w_i * d(rank_s(i)) if rank_s(i) <= levels[l] else 0; the (items, L, ..., L)
    array of maxima is built by broadcasting one strategy axis at a time and summed over
    items (in chunks of `chunk` items to bound memory), minus `cost_table`.
    """
    strategies, lv = space.strategies, np.asarray(space.levels, dtype=np.float64)
    n, L = len(strategies), len(lv)
    col = {s: k for k, s in enumerate(strategies)}
    best: dict[str, np.ndarray] = {}  # item -> per-strategy rank (inf = not found)
    for c in candidates:
        if acted.get(c.item_id, 0.0) == 0.0:
            continue  # unacted items and zero weights contribute nothing
        ranks = best.setdefault(c.item_id, np.full(n, np.inf))
        for s, h in c.hits.items():
            if s in col:
                ranks[col[s]] = min(ranks[col[s]], h.rank)
    items = list(best)
    table = np.zeros((L,) * n)
    if items:
        R = np.stack([best[i] for i in items])  # (m, n)
        w = np.array([acted[i] for i in items], dtype=np.float64)
        per = np.where(np.isfinite(R), w[:, None] * cfg.discount_of(np.where(np.isfinite(R), R, 1.0)), 0.0)
        G = np.where(R[:, :, None] <= lv[None, None, :], per[:, :, None], 0.0)  # (m, n, L)
        # Negative weights (e.g. a penalised skip) break "max of gains"; handle them exactly.
        neg = w < 0
        for sel, sign in ((~neg, 1.0), (neg, -1.0)):
            for a in range(0, int(sel.sum()), chunk):
                g = sign * G[sel][a:a + chunk]  # positive gains whose max is the item's |gain|
                acc = g[:, 0, :]
                for k in range(1, n):
                    acc = np.maximum(acc[..., None], g[:, k, :].reshape((len(g),) + (1,) * k + (L,)))
                table += sign * acc.sum(axis=0)
    return table - cost_table(latency_ms, space, cfg)


def cost_table(latency_ms: Mapping[str, float], space: ActionSpace, cfg: RewardConfig) -> np.ndarray:
    """`plan_cost` of every plan, shape (L,)*n like `reward_table`. Cost is additive over
    strategies, so it is a broadcast sum of per-strategy cost vectors."""
    lv = np.asarray(space.levels, dtype=np.float64)
    n, L = len(space.strategies), len(lv)
    table = np.zeros((L,) * n)
    for k, s in enumerate(space.strategies):
        lat = latency_ms.get(s, 0.0)
        cost = cfg.candidate_cost * lv / 100.0 + np.where(lv > 0, cfg.latency_cost * lat / 100.0, 0.0)
        table += cost.reshape((1,) * k + (L,) + (1,) * (n - k - 1))
    return table
