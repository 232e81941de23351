"""A one-step (contextual bandit) gymnasium environment replaying logged requests.

Why: every logged request knows the gain of its served plan's sub-plans exactly, a shadow
request knows every plan's (`rl.reward`), and the reward model completes the rest
(`rl.experience`). Training (RLlib PPO with gamma=0) can therefore sample plans freely
against these contexts without serving a single bad plan.

Episode: `reset()` draws a logged context (uniformly, from the env's seeded generator;
`options={"index": i}` picks one) and returns its features; `step(action)` maps one
level index per strategy to budgets, forces unavailable strategies (failed in that
request) to 0, and returns the plan's reward, gain minus the price of its measured cost
(`rl.reward.reward_table`), with `terminated=True`. The empty plan (all budgets 0, chosen
or produced by masking) retrieves nothing and costs nothing: its reward is 0. The
observation returned by `step` is the same context's features.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from rl.cost import CostModel
from rl.policy import LEVELS, ActionSpace
from rl.reward import RewardConfig, known_mask, reward_table


@dataclass
class LoggedContext:
    """One logged request, reduced to what the replay needs: its features, the gain of every
    plan (exact where known, completed by the reward model elsewhere), how many candidates
    each strategy returned (the ranker's cost), and which strategies were up."""

    features: np.ndarray
    gains: np.ndarray
    returned: dict[str, int] = field(default_factory=dict)
    available: tuple[str, ...] = ()
    request_id: str = ""
    full: bool = False  # every plan's gain is exact (a shadow request)
    depth: dict[str, int] | None = None  # how deep each strategy was fetched; None: every gain is exact

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32).reshape(-1)
        self.available = tuple(self.available)

    def known(self, space: ActionSpace) -> np.ndarray:
        """Which plans' gains are exact rather than the reward model's (`rl.reward.known_mask`),
        shape (L,)*n: all of them for a shadow request or a context without a logged depth."""
        if self.full or self.depth is None:
            return np.ones((len(space.levels),) * len(space.strategies), dtype=bool)
        return known_mask(self.depth, self.returned, space)


class ReplayBanditEnv(gym.Env):
    """Contextual bandit over logged shadow contexts: observation = features, action = level per strategy."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, contexts: Sequence[LoggedContext], strategies: Sequence[str], levels: Sequence[int] = LEVELS,
                 cfg: RewardConfig | None = None, seed: int | None = 0, cost: CostModel | None = None):
        if not contexts:
            raise ValueError("need at least one logged context")
        dims = {c.features.shape for c in contexts}
        if len(dims) != 1:
            raise ValueError(f"contexts have different feature shapes: {sorted(dims)}")
        self.contexts = list(contexts)
        self.space = ActionSpace(strategies, levels)
        self.strategies = self.space.strategies
        self.levels = self.space.levels
        self.cfg = cfg or RewardConfig()
        self.cost = cost or CostModel()
        (dim,) = dims.pop()
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([len(self.levels)] * len(self.strategies), seed=seed)
        self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._current: int | None = None
        self._own = {id(c) for c in self.contexts}
        self._tables: dict[int, np.ndarray] = {}  # id(context) -> masked reward table, for own contexts

    def budgets(self, action: Sequence[int] | np.ndarray, ctx: LoggedContext) -> dict[str, int]:
        """Level indices -> budgets, with strategies unavailable in `ctx` forced to 0."""
        a = np.asarray(action).reshape(-1)
        if a.shape != (len(self.strategies),) or (a < 0).any() or (a >= len(self.levels)).any():
            raise ValueError(f"invalid action {action!r} for {len(self.strategies)} strategies x "
                             f"{len(self.levels)} levels")
        return self.space.mask({s: int(self.levels[int(i)]) for s, i in zip(self.strategies, a)}, ctx.available)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "index" in options:
            idx = int(options["index"])
            if not 0 <= idx < len(self.contexts):
                raise ValueError(f"context index {idx} out of range 0..{len(self.contexts) - 1}")
        else:
            idx = int(self.np_random.integers(len(self.contexts)))
        self._current = idx
        ctx = self.contexts[idx]
        return ctx.features.copy(), {"index": idx, "request_id": ctx.request_id, "available": ctx.available}

    def step(self, action: Sequence[int] | np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._current is None:
            raise RuntimeError("call reset() before step()")
        ctx = self.contexts[self._current]
        budgets = self.budgets(action, ctx)
        reward = self.table(ctx)[tuple(int(i) for i in np.asarray(action).reshape(-1))]  # masked table
        info = {"index": self._current, "budgets": budgets}
        self._current = None  # one step per episode
        return ctx.features.copy(), float(reward), True, False, info

    def table(self, ctx: LoggedContext) -> np.ndarray:
        """`reward_table` of `ctx` with unavailable strategies masked: along an unavailable
        strategy's axis every level has the level-0 reward. Cached for the env's own contexts."""
        if id(ctx) in self._tables:
            return self._tables[id(ctx)]
        t = self.mask(reward_table(ctx.gains, self.cost, self.space, self.cfg, ctx.returned), ctx)
        if id(ctx) in self._own:
            self._tables[id(ctx)] = t
        return t

    def cost_table(self, ctx: LoggedContext) -> np.ndarray:
        """Every plan's cost (ms) in `ctx`, masked like `table` (not cached)."""
        return self.mask(self.cost.table(self.space, ctx.returned), ctx)

    def mask(self, table: np.ndarray, ctx: LoggedContext) -> np.ndarray:
        """`table` (shape (L,)*n) as `ctx` can realise it: along an unavailable strategy's axis
        every level has the level-0 value."""
        t = table
        for k, s in enumerate(self.strategies):
            if s not in ctx.available:
                t = np.broadcast_to(np.take(t, [0], axis=k), t.shape)
        return np.ascontiguousarray(t)

    def replica(self, seed: int | None = None) -> ReplayBanditEnv:
        """A new env over the same context objects, strategies, levels and reward config that
        shares this env's table cache, so vectorised copies compute each table only once."""
        env = ReplayBanditEnv(self.contexts, self.strategies, self.levels, self.cfg, seed=seed, cost=self.cost)
        env._own, env._tables = self._own, self._tables
        return env

    def reprice(self, price_per_10ms: float) -> None:
        """Set the price of compute (in place, so replicas sharing `cfg` see it) and drop the cached tables."""
        self.cfg.price_per_10ms = float(price_per_10ms)
        self._tables.clear()

    def best_plan(self, ctx: LoggedContext, include_empty: bool = True) -> tuple[dict[str, int], float]:
        """The oracle: the plan with the highest reward for `ctx` and that reward.

        Searched over the plans the env can realise (unavailable strategies at 0). With
        `include_empty` (default, as the env accepts it) the empty plan, worth 0, competes;
        without it only plans calling an available strategy count, as `ActionSpace` serves.
        Ties go to the first plan in C order (lowest level indices)."""
        t = self.table(ctx).copy()
        reach = np.zeros(t.shape, dtype=bool)
        reach[tuple(slice(None) if s in ctx.available else slice(0, 1) for s in self.strategies)] = True
        if not include_empty and ctx.available:
            reach[(0,) * len(self.strategies)] = False
        t[~reach] = -np.inf
        flat = int(np.argmax(t))
        idx = np.unravel_index(flat, t.shape)
        return {s: int(self.levels[i]) for s, i in zip(self.strategies, idx)}, float(t.flat[flat])

    def fixed_plan_value(self, budgets: Mapping[str, int]) -> float:
        """Average reward over all contexts of one fixed plan (masked per context)."""
        return float(np.mean([self.table(c)[tuple(self.levels.index(int(budgets.get(s, 0)))
                                                   for s in self.strategies)] for c in self.contexts]))

    def oracle_value(self, include_empty: bool = True) -> float:
        """Average over contexts of the best plan's reward: an upper bound for any policy."""
        return float(np.mean([self.best_plan(c, include_empty)[1] for c in self.contexts]))

    def all_actions(self) -> list[tuple[int, ...]]:
        """Every action (level-index tuple) in C order, matching `table(ctx).ravel()`."""
        return list(itertools.product(range(len(self.levels)), repeat=len(self.strategies)))
