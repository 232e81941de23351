"""The regime guard: a learned routing serves a kind of query only where it beats the best
static plan for that kind, out of sample.

What: the logged contexts are split in time. A policy is trained on the older ones; on the
newest (`PPOConfig.guard_share`), per regime of the regime feature (`query_acted_before`: a
query users acted on before, or a new one), its greedy plans are compared with the regime's
best static plan (the plan with the highest mean reward on the older contexts of that regime:
at the training's price, or, with a budget, at the lowest price at which the regimes' static
plans meet it, where the comparison is then made too). Where the policy's mean advantage on the newest
contexts is not above zero with one-sided 95 % confidence, or too few of them are left to
tell, the regime is served its static plan (`rl.bandit.BanditPolicy` pins the module's
distribution there, so propensities, epsilon's near plans and the logs stay exact).

Why: on Spotify the trained policy routed new queries between structured, memory and
explore search by noise in their click estimates: 4 of 8 frontier points were dominated by
single static plans, the cheapest at nDCG@10 0.075 against structured25's 0.111 (seed 0,
2026-12-07). The best static plan per regime, chosen from the same estimates, was dominated
at none of the 8 budgets. The price: the test cannot tell a routing that did pay from noise
either. In the full bench it pinned music-demo's new queries at the three cheapest budgets,
where the unguarded routing had beaten every static plan of its cost by 0.032 on held-out
queries (`benchmarks/report.md`, README).
The test counts only the newest contexts where both plans' gains are exact (the served plan's
sub-plans, or every plan of a shadow request: `LoggedContext.known`), never a gain the reward
model filled in: the probe was trained on tables the same model completed, so it prefers
exactly the plans the model overrates, and a test on those tables agrees with it. On SciFact
(seed 0, 2026-12-07) the probe's routing of new queries beat its static plan by +0.026 (se
0.009) on the completed tables at a 29.5 ms budget and scored 0.701 on held-out queries, against
0.736 for a cheaper static plan; on exact gains alone its advantage is -0.005, the regime is
pinned, and the point scores 0.724.
The regimes are the split the reward model already makes (`rl.reward_model`): repeats are
answered by the click-fed memory and popularity, new queries are not, and the mix of the
two differs between the log and whoever is served next.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rl.plan_search import lowest_price

if TYPE_CHECKING:  # the serving side (rl.bandit) imports this module: no gymnasium env there
    from rl.env import LoggedContext, ReplayBanditEnv

#: One-sided 95 % normal quantile: the policy's advantage must exceed zero by this many standard errors
Z = 1.645
#: Fewer validation contexts of a regime than this: its static plan serves (nothing to tell them apart with)
MIN_CONTEXTS = 20


def regimes(features: np.ndarray, split: int | None) -> np.ndarray:
    """Each context's regime: the regime feature above 0.5 (1) or not (0); all 0 without one."""
    x = np.atleast_2d(np.asarray(features))
    if split is None:
        return np.zeros(len(x), dtype=np.int64)
    return (x[:, split] > 0.5).astype(np.int64)


def static_plans(gain: Mapping[int, np.ndarray], cost: Mapping[int, np.ndarray], count: Mapping[int, int],
                 price: Callable[[float, np.ndarray], np.ndarray], price_per_10ms: float,
                 budget_ms: float | None = None, probes: int = 40) -> tuple[dict[int, int], float]:
    """regime -> the flat index of its best non-empty static plan, and the price it was chosen at.

    `gain`, `cost`: regime -> (plans,) sums over that regime's older contexts of every plan's
    gain and cost (ms); `count`: regime -> contexts. Without a budget, each regime's plan has the
    highest mean gain minus `price(price_per_10ms, cost)`. With one, the price is the lowest at which
    the regimes' plans cost at most `budget_ms` on the contexts' mean
    (`rl.plan_search.lowest_price`): the static policy that meets the budget."""
    total = sum(count.values())

    def pick(p: float) -> dict[int, int]:
        out = {}
        for r in gain:
            v = np.asarray(gain[r], dtype=np.float64) - price(p, np.asarray(cost[r], dtype=np.float64))
            v[0] = -np.inf  # the empty plan is never served
            out[int(r)] = int(v.argmax())
        return out

    def spend(p: float) -> float:
        plans = pick(p)
        return sum(float(cost[r][plans[r]]) for r in plans) / total

    p = price_per_10ms if budget_ms is None else lowest_price(spend, budget_ms, probes)
    return pick(p), p


def decide(static: Mapping[int, int], val_regime: np.ndarray, v_policy: np.ndarray, v_static: np.ndarray,
           exact: np.ndarray | None = None, z: float = Z, min_contexts: int = MIN_CONTEXTS
           ) -> dict[int, dict[str, Any]]:
    """Per regime with a static plan: whether the policy's routing serves it, and the test.

    `v_policy`, `v_static` (N,): each newest context's reward (gain minus the price of the
    plan's cost) under the policy's greedy plan and under its regime's static plan; `exact`
    (N,): the contexts where both are exact, the only ones the test counts (all without). A
    regime is `contextual` when the paired mean advantage minus `z` standard errors is above 0."""
    exact = np.ones(len(val_regime), bool) if exact is None else np.asarray(exact, bool)
    out: dict[int, dict[str, Any]] = {}
    for r, plan in static.items():
        rows = np.flatnonzero((val_regime == r) & exact)
        row: dict[str, Any] = {"static_plan": plan, "contexts": int((val_regime == r).sum()),
                               "exact_contexts": len(rows), "contextual": False}
        if len(rows) >= min_contexts:
            diff = v_policy[rows] - v_static[rows]
            mean, se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(rows)))
            row.update(advantage=round(mean, 5), se=round(se, 5), contextual=bool(mean - z * se > 0))
        out[int(r)] = row
    return out


def judge(env: ReplayBanditEnv, older: Sequence[LoggedContext], newer: Sequence[LoggedContext], split: int | None,
          greedy: Callable[[np.ndarray, Sequence[str]], dict[str, int]], price_per_10ms: float,
          budget_ms: float | None = None) -> dict[str, Any]:
    """The guard's record for a policy (`greedy`: features, available strategies -> plan) trained
    on `older`: each regime's static plan (`static_plans` on `older`; `env` prices nothing, its
    tables are gains; a regime only `newer` has gets the best plan over all of `older`), `decide`
    on the contexts of `newer` where both plans' gains are exact (`LoggedContext.known`), at the
    static plans' price (the policy's own price without a budget), and the plans that pinned
    regimes serve (`static`)."""
    shape = (len(env.levels),) * len(env.strategies)

    def price(p: float, ms: np.ndarray) -> np.ndarray:
        return env.cfg.model_copy(update={"price_per_10ms": p}).price(ms)

    gain: dict[int, np.ndarray] = {}
    cost: dict[int, np.ndarray] = {}
    count: dict[int, int] = {}
    for c, r in zip(older, regimes(np.stack([c.features for c in older]), split)):
        r = int(r)
        g, ms = env.table(c).ravel().astype(np.float64), env.cost_table(c).ravel().astype(np.float64)
        gain[r], cost[r] = (gain[r] + g, cost[r] + ms) if r in gain else (g, ms)
        count[r] = count.get(r, 0) + 1
    static, p = static_plans(gain, cost, count, price, price_per_10ms, budget_ms)
    static_cost = sum(float(cost[r][static[r]]) for r in cost) / sum(count.values())
    val_regime = regimes(np.stack([c.features for c in newer]), split)
    for r in set(val_regime.tolist()) - set(static):  # a regime the older contexts never saw: the overall plan
        overall = sum(gain.values()) - price(p, sum(cost.values()))
        overall[0] = -np.inf
        static[int(r)] = int(overall.argmax())
    v_policy, v_static = np.zeros(len(newer)), np.zeros(len(newer))
    exact = np.zeros(len(newer), bool)
    for i, (c, r) in enumerate(zip(newer, val_regime)):
        v = env.table(c).ravel() - price(p, env.cost_table(c).ravel())
        known = env.mask(c.known(env.space), c).ravel()
        g = greedy(c.features, c.available)
        served = int(np.ravel_multi_index([env.levels.index(g[s]) for s in env.strategies], shape))
        v_policy[i] = v[served]
        up = [s for s, lv in zip(env.strategies, np.unravel_index(static[int(r)], shape)) if lv and s in c.available]
        v_static[i] = v[static[int(r)]] if up else v_policy[i]  # nothing of the plan up: the routing serves
        exact[i] = known[served] and (known[static[int(r)]] or not up)
    rows = decide(static, val_regime, v_policy, v_static, exact)
    plan_of = {r: {s: int(env.levels[i]) for s, i in zip(env.strategies, np.unravel_index(row["static_plan"], shape))}
               for r, row in rows.items()}
    return {"price_per_10ms": p, "budget_ms": budget_ms,
            "static_cost_ms": round(static_cost, 3),
            "regimes": {str(r): {**row, "static_plan": plan_of[r]} for r, row in rows.items()},
            "static": {str(r): plan_of[r] for r, row in rows.items() if not row["contextual"]}}


def pinned(meta: Mapping[str, Any]) -> tuple[int | None, dict[int, dict[str, int]]]:
    """From an artifact's meta: (the regime feature's index or None, regime -> the static plan
    it is served), empty when the guard kept the routing everywhere or did not run."""
    guard = meta.get("guard") or {}
    plans = {int(r): dict(p) for r, p in (guard.get("static") or {}).items()}
    feature = guard.get("feature")
    names = meta.get("feature_names") or []
    if plans and feature is not None and feature not in names:
        raise ValueError(f"the guard pinned regimes of {feature!r}, which is not among the features {names}")
    return (names.index(feature) if feature is not None else None), plans


def pin_log_probs(logq: np.ndarray, x: np.ndarray, split: int | None, plans: Mapping[int, Mapping[str, int]],
                  strategies: Sequence[str], levels: Sequence[int], av: np.ndarray | None = None,
                  floor: float = 1e-9) -> np.ndarray:
    """`logq` (N, strategies, levels) with the rows of pinned regimes replaced by a distribution
    that puts all but `floor` per other level on the regime's static plan. A row whose
    availability (`av`, (N, strategies)) leaves none of the plan's strategies up keeps the
    module's distribution: the plan would be empty there (the guard valued such a context by
    the routing too, `judge`)."""
    if not plans:
        return logq
    reg = regimes(x, split)
    out = logq.copy()
    L = len(levels)
    for r, plan in plans.items():
        calls = np.array([int(plan.get(s, 0)) > 0 for s in strategies])
        rows = (reg == r) & (np.ones(len(reg), bool) if av is None else (np.asarray(av) & calls).any(axis=1))
        if not rows.any():
            continue
        pin = np.full((len(strategies), L), np.log(floor))
        for k, s in enumerate(strategies):
            pin[k, list(levels).index(int(plan.get(s, 0)))] = np.log1p(-floor * (L - 1))
        out[rows] = pin
    return out
