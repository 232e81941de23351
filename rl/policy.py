"""The policy seam: the orchestrator asks a policy which strategies to call and how
many candidates to take from each, and logs the exact probability of that plan.

An action is a budget level per strategy (0 = don't call). This module holds the
action space and the default policy: a fixed plan with a small, seeded, uniformly
random exploration, so every logged propensity is real and off-policy evaluation of
later policies is possible. The RLlib bandit (a later milestone) implements the same
`Policy` protocol.
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


class FixedPolicy:
    """A fixed plan, replaced with probability `epsilon` by a uniformly random plan.

    propensity(plan) = (1 - eps) * [plan == fixed plan] + eps / |non-empty plans|,
    computed over the strategies that are up at that moment (down ones are masked to 0).
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

    def propensity(self, budgets: dict[str, int], available: Sequence[str]) -> float:
        """The exact probability of `budgets`; 0 for plans this policy never serves (empty,
        a budget for an unavailable or unknown strategy, a level off the grid)."""
        n = self.space.size(available)
        if n == 0:
            return 1.0 if not any(budgets.values()) else 0.0
        if (not any(budgets.values()) or any(b not in self.space.levels for b in budgets.values())
                or any(b > 0 and s not in available for s, b in budgets.items())
                or any(s not in self.space.strategies for s, b in budgets.items() if b > 0)):
            return 0.0
        fixed = self.space.mask(self.budgets, available)
        if not any(fixed.values()):  # the fixed plan is empty here: exploration is all there is
            return 1.0 / n
        return (1 - self.epsilon) * float(self.space.mask(budgets, available) == fixed) + self.epsilon / n

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        return self.propensity(budgets, ctx.available)

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        fixed = self.space.mask(self.budgets, ctx.available)
        out = self.space.uniform(ctx.available)
        if any(fixed.values()):
            out = self.epsilon * out
            out[self.space.index(fixed)] += 1 - self.epsilon
        return out

    def plan(self, ctx: PolicyContext) -> Plan:
        fixed = self.space.mask(self.budgets, ctx.available)
        if not any(fixed.values()) or self.rng.random() < self.epsilon:
            budgets = self.space.sample_uniform(self.rng, ctx.available)
        else:
            budgets = fixed
        p = self.propensity(budgets, ctx.available)
        assert p > 0 and math.isfinite(p)
        return Plan(budgets=budgets, propensity=p, policy_version=self.version)


class ShadowPolicy:
    """Shadow exploration around a serving policy: with probability `share` call every
    available strategy at the top budget and flag the plan `shadow`, else ask `base`.

    Shadow requests log every candidate's provenance at full depth, so the reward of any
    plan can be recomputed for them afterwards (`rl.reward`): full-information training
    data. The logged propensity is the mixture's, exact:
    p(b) = share * [b == full plan] + (1 - share) * base.prob(b).
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

    def full(self, ctx: PolicyContext) -> dict[str, int]:
        space: ActionSpace = self.base.space  # type: ignore[attr-defined]
        top = max(space.levels)
        return {s: (top if s in ctx.available else 0) for s in space.strategies}

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        full = self.full(ctx)
        return self.share * float(budgets == full and any(full.values())) + (1 - self.share) * self.base.prob(
            budgets, ctx)

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        out = (1 - self.share) * self.base.plan_probs(ctx)
        full = self.full(ctx)
        if any(full.values()):
            out[self.base.space.index(full)] += self.share  # type: ignore[attr-defined]
        return out

    def plan(self, ctx: PolicyContext) -> Plan:
        full = self.full(ctx)
        if any(full.values()) and self.rng.random() < self.share:
            return Plan(budgets=full, propensity=self.prob(full, ctx), policy_version=self.version, shadow=True)
        chosen = self.base.plan(ctx)
        return Plan(budgets=chosen.budgets, propensity=self.prob(chosen.budgets, ctx), policy_version=self.version)
