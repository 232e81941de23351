"""The direct-method greedy policy, and the price of compute that meets a mean budget.

What: a ridge regression of every training context's reward-table gains on its features
(`rl.reward_model.RewardModel`, fitted on the completed tables of all contexts, so the
served requests' exact sub-plan gains count as much as the shadow requests' tables; its
strength chosen by the value of its greedy plans on the most recent contexts) predicts
each context's gain for every plan; `greedy` is, per context, the non-empty plan with the
highest predicted gain minus the price of its cost; `price_for_budget` is the lowest price
whose greedy plans cost at most the budget on average.

Why: the warm start used to meet a budget by a multiplicative dual ascent on the network's
own greedy cost. That cost is a step function of the price; the ascent oscillated, and
the network, trained at whatever price the ascent stopped on, often collapsed to one plan
(SciFact, 2026-12-06: a 16.7 ms budget drove the price to 36.8 per 10 ms and the policy
that came out was dominated by 80 static plans; at 5.7 ms it served memory alone). The
direct method with a regression oracle is close to the best contextual-bandit methods
across hundreds of data sets (Bietti, Agarwal, Langford: "A contextual bandit bake-off",
JMLR 2021). Its greedy mean cost never increases with the price, so a bisection on the log
price finds the budget's price exactly on the training contexts, in one argmax per context
and probe; when the features say nothing, the prediction is every plan's mean gain and the
greedy policy is the best static plan at that price. The warm start (`rl.warm_start`) fits
the network to these plans, ascends the exact expected reward from there at the price
found, and PPO fine-tunes at it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rl.reward_model import RewardModel

PRICE_RANGE = (1e-4, 100.0)  # reward per 10 ms searched by price_for_budget
ALPHA: float | None = None  # ridge strength of the gain model: None = chosen on the recent contexts (`rl.reward_model`)


@dataclass
class PlanSearch:
    """Predicted gains and costs of every plan for N contexts, both (N, plans), plans in grid order."""

    gains: np.ndarray
    costs: np.ndarray
    alphas: dict[str, float | None] = field(default_factory=dict)  # the gain model's ridge strength(s)

    @classmethod
    def fit(cls, features: np.ndarray, gains: np.ndarray, costs: np.ndarray, alpha: float | None = ALPHA,
            split: int | None = None) -> PlanSearch:
        """Fit the gain model on (features (N, d), gain tables (N, ...)) and predict every context's table.
        `costs` (N, ...) are the contexts' plan costs in ms, masked as their tables are; `split`: the
        index of the binary feature to fit one model per side of (`rl.reward_model`)."""
        n = len(gains)
        tables = np.asarray(gains, dtype=np.float64).reshape(n, -1)
        model = RewardModel(alpha=alpha, min_full=2, split=split, costs=np.asarray(costs).reshape(n, -1))
        model.fit(list(features), list(tables), [np.ones(tables.shape[1], dtype=bool)] * n)
        return cls(model.predict_many(np.asarray(features)).astype(np.float32),
                   np.asarray(costs, dtype=np.float32).reshape(n, -1), model.alphas)

    def greedy(self, price_per_10ms: float) -> np.ndarray:
        """Per context, the flat index of the non-empty plan with the highest predicted gain minus
        price x cost / 10 ms (ties: the first in grid order). A plan whose predicted gain is -inf
        (one a context cannot realise: the warm start sets them) is never chosen."""
        value = self.gains - np.float32(price_per_10ms / 10.0) * self.costs
        value[:, 0] = -np.inf  # the empty plan is never served
        return value.argmax(axis=1)

    def mean_cost(self, plans: np.ndarray) -> float:
        """Mean cost (ms) of one plan per context."""
        return float(self.costs[np.arange(len(plans)), plans].mean())

    def price_for_budget(self, budget_ms: float, probes: int = 40) -> tuple[float, list[dict[str, float]]]:
        """The lowest price (`lowest_price`) at which the greedy plans' mean cost is at most
        `budget_ms`, and the probes' (price, cost) trace."""
        trace = []

        def spend(price: float) -> float:
            cost = self.mean_cost(self.greedy(price))
            trace.append({"price_per_10ms": price, "greedy_cost_ms": cost})
            return cost

        return lowest_price(spend, budget_ms, probes), trace


def lowest_price(spend: Callable[[float], float], budget_ms: float, probes: int = 40) -> float:
    """The lowest price within PRICE_RANGE, found by bisection on a log scale, at which
    `spend(price)` (a mean cost in ms that never increases with the price) is at most
    `budget_ms`. If even the highest price spends more (no plan is that cheap), that price;
    if the lowest price's spend fits, the lowest."""
    lo, hi = np.log(PRICE_RANGE[0]), np.log(PRICE_RANGE[1])
    if spend(float(np.exp(lo))) <= budget_ms:
        return float(np.exp(lo))
    if spend(float(np.exp(hi))) > budget_ms:
        return float(np.exp(hi))
    for _ in range(probes):  # invariant: spend(lo) > budget >= spend(hi)
        mid = (lo + hi) / 2
        if spend(float(np.exp(mid))) <= budget_ms:
            hi = mid
        else:
            lo = mid
    return float(np.exp(hi))
