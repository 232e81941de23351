"""The headroom bound: how much could ANY contextual policy beat the best fixed plan?

Why: `ltrr bench` asks ltrr to beat the best fixed plan in hindsight while it explores
(shadow requests at full fan-out, an epsilon floor of uniform plans). Exploration has a
price; a contextual policy can only pay it back from context-dependence of the best
plan. When the second is smaller than the first, no learner can win, however good its
model; this module measures both sides from the stream's reward tables.

Figures, all over the last quarter of the stream (`T[t, a]`: reward of plan a on request t):

- `best_fixed`: the plan with the largest total reward over the whole stream;
- `best_fixed_last_quarter`: the best plan of the last quarter alone (what adapting to
  drift, e.g. the memory strategy learning, could add);
- `per_query_cv`: requests are grouped by a key (the bench uses the query text and
  whether users acted on it before); a group with at least `MIN_GROUP` requests gets the
  plan that is best on half of them (shrunk toward the stream's mean table), scored on
  the other half; the remaining requests form one group handled the same way. The
  bench's users act independently of who they are and when, so the query and memory's
  state are all a context can tell: this estimates the best any contextual policy could
  reach;
- `oracle`: the best plan per request, knowing its clicks (mostly click noise);
- `shadow_price_per_pct`, `epsilon_price_per_pct`: what 1 % of shadow requests (every
  strategy at the top level) and 1 % of uniformly random plans cost against `best_fixed`;
- `depth_gain`: the mean gain (reward before costs) of every strategy at the top level
  minus every strategy at the lowest non-zero level: what fetching deep adds.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from rl.policy import ActionSpace

MIN_GROUP = 4


def per_query_cv(T: np.ndarray, keys: Sequence[Hashable], min_group: int = MIN_GROUP) -> np.ndarray:
    """Each request's reward under the plan chosen on the other half of its group (module doc).

    `T` is (requests, plans); a column of -inf (the empty plan) is never chosen."""
    if len(keys) != len(T):
        raise ValueError(f"{len(keys)} keys for {len(T)} requests")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for t, k in enumerate(keys):
        groups[k].append(t)
    rest = sorted(t for ts in groups.values() if len(ts) < min_group for t in ts)
    parts = [np.array(ts) for ts in groups.values() if len(ts) >= min_group] + [np.array(rest, dtype=int)]
    finite = np.where(np.isfinite(T), T, 0.0)
    prior = 2.0 * finite.mean(axis=0) + np.where(np.isfinite(T).all(axis=0), 0.0, -np.inf)
    out = np.zeros(len(T))
    for ts in parts:
        if len(ts) < 2:
            out[ts] = T[ts, int(np.argmax(prior))] if len(ts) else 0.0
            continue
        half = np.arange(len(ts)) % 2
        for side in (0, 1):
            fit, ev = ts[half == side], ts[half != side]
            out[ev] = T[ev, int(np.argmax(finite[fit].sum(axis=0) + prior))]
    return out


def bounds(gains: np.ndarray, costs: np.ndarray, keys: Sequence[Hashable], space: ActionSpace) -> dict:
    """The module doc's figures for the gain tables `gains` (requests, plans; grid order)
    under the per-plan costs `costs` (plans,)."""
    grid = space.grid()
    T = gains - costs[None, :]
    T[:, grid.sum(axis=1) == 0] = -np.inf  # the empty plan is not a plan
    n = len(T)
    last = slice(3 * n // 4, n)
    lq = T[last]
    bf = int(np.argmax(np.where(np.isfinite(T), T, -1e18).sum(axis=0)))
    bl = int(np.argmax(np.where(np.isfinite(lq), lq, -1e18).sum(axis=0)))
    full = space.index({s: max(space.levels) for s in space.strategies})
    low = space.index({s: min(lv for lv in space.levels if lv > 0) for s in space.strategies})
    best = float(lq[:, bf].mean())
    cv = float(per_query_cv(T, keys)[last].mean())
    plans = np.isfinite(lq[0])
    return {"best_fixed": round(best, 4),
            "best_fixed_plan": {s: int(b) for s, b in zip(space.strategies, grid[bf]) if b},
            "best_fixed_last_quarter": round(float(lq[:, bl].mean()), 4),
            "per_query_cv": round(cv, 4),
            "headroom": round(cv - best, 4),
            "oracle": round(float(lq[:, plans].max(axis=1).mean()), 4),
            "shadow_price_per_pct": round((best - float(lq[:, full].mean())) / 100, 6),
            "epsilon_price_per_pct": round((best - float(lq[:, plans].mean())) / 100, 6),
            "depth_gain": round(float(gains[last, full].mean() - gains[last, low].mean()), 4)}
