"""The policy seam: the orchestrator asks a policy which strategies to call and how
many candidates to take from each, and logs the exact probability of that plan.

An action is a budget level per strategy (0 = don't call). This module holds the
action space and the default policy: a fixed plan with a small, seeded exploration of
the plans next to it (`ActionSpace.near`: one strategy one budget level up or down), so
every logged propensity is real and off-policy evaluation of later policies is possible,
without the cost of serving uniformly random plans out of 15,624. The RLlib bandit
(`rl.bandit`) implements the same `Policy` protocol and explores the same way around
its greedy plan; `ShadowPolicy` adds off-path shadow exploration.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

LEVELS: tuple[int, ...] = (0, 10, 25, 50, 100)

DEFAULT_BUDGETS: dict[str, int] = {"lexical": 50, "dense": 50, "memory": 10, "popularity": 10, "structured": 25,
                                   "explore": 10}


@dataclass(slots=True)
class Plan:
    """Budgets per strategy, the plan's probability under the policy that chose it, and that policy."""

    budgets: dict[str, int]
    propensity: float
    policy_version: str
    shadow: bool = False

    @property
    def called(self) -> list[str]:
        return [s for s, b in self.budgets.items() if b > 0]


@dataclass(slots=True)
class PolicyContext:
    """What a policy sees: the context features and which strategies are up."""

    features: np.ndarray
    available: Sequence[str]
    extra: dict = field(default_factory=dict)


class Policy(Protocol):
    version: str

    def plan(self, ctx: PolicyContext) -> Plan: ...

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        """The probability that `plan(ctx)` returns `budgets` (exact)."""
        ...

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        """The probability of every plan, in `ActionSpace.grid()` order (off-policy evaluation)."""
        ...


class ActionSpace:
    """All plans over `strategies` x `levels`, except the empty plan (call nothing)."""

    def __init__(self, strategies: Sequence[str], levels: Sequence[int] = LEVELS):
        if 0 not in levels:
            raise ValueError("levels must include 0 (don't call)")
        self.strategies = list(strategies)
        self.levels = tuple(sorted(set(levels)))

    def size(self, available: Sequence[str]) -> int:
        """Number of non-empty plans when only `available` strategies may be called."""
        m = sum(1 for s in self.strategies if s in available)
        return len(self.levels) ** m - 1 if m else 0

    def grid(self) -> np.ndarray:
        """All plans as a (n_levels**n_strategies, n_strategies) int array of budgets, C order:
        row k has the level indices `np.unravel_index(k, (L,)*n)`, the order of
        `rl.reward.reward_table(...).ravel()` and of `itertools.product(levels, repeat=n)`."""
        lv = np.asarray(self.levels)
        n = len(self.strategies)
        return lv[np.indices((len(lv),) * n).reshape(n, -1).T]

    def index(self, budgets: dict[str, int]) -> int:
        """The row of `budgets` in `grid()`."""
        idx = tuple(self.levels.index(budgets.get(s, 0)) for s in self.strategies)
        return int(np.ravel_multi_index(idx, (len(self.levels),) * len(self.strategies)))

    def uniform(self, available: Sequence[str]) -> np.ndarray:
        """The uniform distribution over non-empty plans of available strategies, in grid order."""
        grid = self.grid()
        ok = np.all([(grid[:, k] == 0) | (s in available) for k, s in enumerate(self.strategies)], axis=0)
        ok &= grid.sum(axis=1) > 0
        return ok / max(ok.sum(), 1)

    def sample_uniform(self, rng: np.random.Generator, available: Sequence[str]) -> dict[str, int]:
        """A uniformly random non-empty plan among available strategies (rejection sampling)."""
        up = [s for s in self.strategies if s in available]
        if not up:
            return {s: 0 for s in self.strategies}
        while True:
            chosen = {s: int(rng.choice(self.levels)) if s in up else 0 for s in self.strategies}
            if any(chosen.values()):
                return chosen

    def mask(self, budgets: dict[str, int], available: Sequence[str]) -> dict[str, int]:
        return {s: (budgets.get(s, 0) if s in available else 0) for s in self.strategies}

    def near(self, budgets: dict[str, int], available: Sequence[str]) -> list[dict[str, int]]:
        """The non-empty plans one step from `budgets`: one available strategy one level up or
        down. All distinct, so a uniform draw from them gives each probability 1/len."""
        out = []
        for s in self.strategies:
            if s not in available:
                continue
            i = self.levels.index(budgets.get(s, 0))
            for j in (i - 1, i + 1):
                if 0 <= j < len(self.levels):
                    plan = {**self.mask(budgets, available), s: self.levels[j]}
                    if any(plan.values()):
                        out.append(plan)
        return out

    def near_probs(self, budgets: dict[str, int], available: Sequence[str]) -> np.ndarray:
        """The uniform distribution over `near(budgets)`, in grid order."""
        out = np.zeros(len(self.levels) ** len(self.strategies))
        plans = self.near(budgets, available)
        for plan in plans:
            out[self.index(plan)] = 1.0 / len(plans)
        return out


class FixedPolicy:
    """A fixed plan, replaced with probability `epsilon` by a plan next to it.

    propensity(plan) = (1 - eps) * [plan == fixed] + eps * [plan in near(fixed)] / |near(fixed)|,
    over the strategies that are up at that moment (down ones are masked to 0). When the
    masked fixed plan is empty, every plan is drawn uniformly (1 / |non-empty plans|).
    """

    def __init__(self, strategies: Sequence[str], budgets: dict[str, int] | None = None, epsilon: float = 0.1,
                 seed: int = 0, version: str = "fixed-v1"):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.space = ActionSpace(strategies)
        budgets = budgets or DEFAULT_BUDGETS
        bad = {s: b for s, b in budgets.items() if b not in self.space.levels}
        if bad:
            raise ValueError(f"budgets must be one of {self.space.levels}: {bad}")
        self.budgets = {s: budgets.get(s, 0) for s in self.space.strategies}
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self.version = version

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        fixed = self.space.mask(self.budgets, ctx.available)
        if not any(fixed.values()):  # the fixed plan is empty here: exploration is all there is
            return self.space.uniform(ctx.available)
        out = self.epsilon * self.space.near_probs(fixed, ctx.available)
        out[self.space.index(fixed)] += 1 - self.epsilon
        return out

    def propensity(self, budgets: dict[str, int], available: Sequence[str]) -> float:
        """The exact probability of `budgets`; 0 for plans this policy never serves (empty,
        a budget for an unavailable or unknown strategy, a level off the grid)."""
        if (any(s not in self.space.strategies for s, b in budgets.items() if b > 0)
                or any(b not in self.space.levels for b in budgets.values())):
            return 0.0
        return float(self.plan_probs(PolicyContext(np.zeros(0), available))[self.space.index(budgets)])

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        return self.propensity(budgets, ctx.available)

    def plan(self, ctx: PolicyContext) -> Plan:
        fixed = self.space.mask(self.budgets, ctx.available)
        if not any(fixed.values()):
            budgets = self.space.sample_uniform(self.rng, ctx.available)
        elif self.rng.random() < self.epsilon:
            options = self.space.near(fixed, ctx.available)
            budgets = options[int(self.rng.integers(len(options)))]
        else:
            budgets = fixed
        p = self.propensity(budgets, ctx.available) if any(budgets.values()) else 1.0
        assert p > 0 and math.isfinite(p)
        return Plan(budgets=budgets, propensity=p, policy_version=self.version)


class ShadowPolicy:
    """Off-path shadow exploration around a serving policy: `base` chooses every plan; with
    probability `share`, independently of the context, the request is also flagged `shadow`.

    The pipeline serves the plan as chosen and, after the response, fetches every other
    strategy at its top budget for the log (`engine.pipeline`): the reward of any plan can
    then be recomputed for that request (`rl.reward`), full-information training data that
    costs compute but never changes what the user sees. The plan's propensity is therefore
    `base`'s, exact: the flag is not part of the action.
    """

    def __init__(self, base: Policy, share: float, seed: int = 0):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"shadow share must be in [0, 1], got {share}")
        self.base = base
        self.share = share
        self.rng = np.random.default_rng(seed + 7919)

    @property
    def version(self) -> str:
        return self.base.version

    @property
    def space(self) -> ActionSpace:
        return self.base.space  # type: ignore[attr-defined]

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        return self.base.prob(budgets, ctx)

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        return self.base.plan_probs(ctx)

    def plan(self, ctx: PolicyContext) -> Plan:
        chosen = self.base.plan(ctx)
        shadow = bool(self.rng.random() < self.share)
        return Plan(budgets=chosen.budgets, propensity=chosen.propensity, policy_version=self.version, shadow=shadow)
