"""Serve the trained PPO bandit: sample retrieval plans and log their EXACT propensities.

`BanditPolicy` implements the `rl.policy.Policy` protocol over an artifact written by
`rl.train.train_bandit` (`meta.json` + the RLModule in `module/`). Only the RLModule is
loaded (no Algorithm, no Ray cluster); `forward_inference` gives, per strategy, the
logits of its budget level (MultiDiscrete: the sub-action logits concatenated), so the
module's plan distribution is a product of per-strategy categoricals q_s.

The served distribution over budgets b, for the strategies `available` in the context:

    P_mod(b)  = prod_{s available} q_s(b_s) * [b_s = 0 for every unavailable s]
    P_empty   = prod_{s available} q_s(0)
    p(b)      = (1 - eps) * P_mod(b) / (1 - P_empty) + eps * Near_g(b)    for non-empty b, else 0

g is the module's greedy plan (`greedy`: each available strategy's most likely level,
never empty) and Near_g the uniform distribution over the plans one step from it
(`ActionSpace.near`: one strategy one level up or down). Exploring next to the greedy
plan rather than uniformly over all N = `ActionSpace.size(available)` plans is what the
contextual-bandit bake-off found near-optimal, and it never serves a far-off plan. The empty plan is never served: the
module part is sampled conditioned on non-empty, exactly and without retry loops
(strategy by strategy, each level weighted by the probability that the rest can still
make the plan non-empty), which is the distribution rejection sampling would give. If
the module puts (numerically) all its mass on the empty plan, the module part is
replaced by the uniform distribution 1/N. With no strategy available the
empty plan is the only one, with probability 1. Plans the policy can never produce
(a budget for an unavailable or unknown strategy, a level off the grid, the empty plan)
have probability 0.

A regime the training's guard pinned (`rl.guard`: the routing did not beat the regime's best
static plan out of sample) has q_s put all but 1e-9 per other level on that plan's level, so
the formula above, epsilon's near plans and the logged propensities hold unchanged.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl.artifact import META_FILE, MODULE_DIR
from rl.guard import pin_log_probs, pinned
from rl.policy import ActionSpace, Plan, PolicyContext


@contextmanager
def quiet_ray_logs(level: int = logging.ERROR) -> Iterator[None]:
    """Raise Ray's RLlib and deprecation loggers to `level` for the block (RLlib logs notices
    such as "running PPO on the new API stack" at WARNING, unconditionally)."""
    loggers = [logging.getLogger(name) for name in ("ray.rllib", "ray._common.deprecation")]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, before):
            lg.setLevel(lv)


class BanditPolicy:
    """A trained PPO RLModule as a serving policy with an epsilon floor of uniform exploration."""

    #: Below this probability of a non-empty plan, the module part falls back to uniform.
    MIN_NONEMPTY = 1e-12

    def __init__(self, module: Any, meta: dict[str, Any], epsilon: float = 0.05, seed: int = 0,
                 temperature: float = 1.0):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if not 0.0 < temperature <= 10.0:
            raise ValueError(f"temperature must be in (0, 10], got {temperature}")
        self.module, self.meta, self.epsilon = module, meta, float(epsilon)
        # q_s = softmax(logits_s / temperature): below 1 sharpens the module's distribution
        # towards its mode (less exploration cost), still sampled, so propensities stay exact
        self.temperature = float(temperature)
        self.version: str = str(meta["version"])
        self.space = ActionSpace(meta["strategies"], meta["levels"])
        if list(self.space.levels) != list(meta["levels"]):
            raise ValueError(f"meta levels must be sorted and unique, got {meta['levels']}")
        self.strategies, self.levels = self.space.strategies, self.space.levels
        self.obs_dim = int(meta["obs_dim"])
        self._col = {s: k for k, s in enumerate(self.strategies)}
        self._lvl = {b: i for i, b in enumerate(self.levels)}
        self._split, self._pinned = pinned(meta)  # regimes the training's guard serves a static plan (`rl.guard`)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, artifact_dir: Path, epsilon: float = 0.05, seed: int = 0, temperature: float = 1.0) -> BanditPolicy:
        """Load `artifact_dir/meta.json` and the RLModule in `artifact_dir/module` (inference only)."""
        from ray.rllib.core.rl_module.rl_module import RLModule

        artifact_dir = Path(artifact_dir).resolve()  # RLlib reads paths as URIs: a relative one has no scheme
        meta = json.loads((artifact_dir / META_FILE).read_text())
        torch.set_num_threads(1)
        with quiet_ray_logs():  # from_checkpoint logs a deprecation notice about RLlib's own ctor
            module = RLModule.from_checkpoint(str(artifact_dir / MODULE_DIR))
        module.eval()
        return cls(module, meta, epsilon=epsilon, seed=seed, temperature=temperature)

    # ---- the module's per-strategy level distributions -------------------------------------------------

    def _features(self, features: Any, batched: bool) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != (2 if batched else 1) or x.shape[-1] != self.obs_dim:
            want = f"(N, {self.obs_dim})" if batched else f"({self.obs_dim},)"
            raise ValueError(f"features have shape {x.shape}; bandit {self.version!r} expects {want} "
                             f"(feature_names: {self.meta.get('feature_names')})")
        if not np.isfinite(x).all():
            raise ValueError("features contain non-finite values")
        return x

    def _log_probs(self, x: np.ndarray, av: np.ndarray | None = None) -> np.ndarray:
        """(N, obs_dim) float32 -> (N, n_strategies, n_levels) float64 log-probabilities, one forward
        pass; in a regime the training's guard pinned, all but 1e-9 per other level on its static plan,
        unless `av` ((N, n_strategies) availability) says none of that plan's strategies is up."""
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.from_numpy(np.ascontiguousarray(x))})
        logits = out["action_dist_inputs"].double().numpy().reshape(len(x), len(self.strategies), len(self.levels))
        logits = logits / self.temperature
        mx = logits.max(axis=-1, keepdims=True)
        logq = logits - mx - np.log(np.exp(logits - mx).sum(axis=-1, keepdims=True))
        return pin_log_probs(logq, x, self._split, self._pinned, self.strategies, self.levels, av)

    def probs(self, features: np.ndarray) -> np.ndarray:
        """Module probabilities of each level per strategy (no masking, no epsilon): (n_strategies, n_levels)."""
        return np.exp(self._log_probs(self._features(features, batched=False)[None])[0])

    def probs_batch(self, features: np.ndarray) -> np.ndarray:
        """`probs` for an (N, obs_dim) matrix in one forward pass: (N, n_strategies, n_levels)."""
        return np.exp(self._log_probs(self._features(features, batched=True)))

    # ---- exact propensities ----------------------------------------------------------------------------

    def _avail(self, available: Sequence[str]) -> np.ndarray:
        return np.array([s in available for s in self.strategies], dtype=bool)

    def _indices(self, budgets: dict[str, int]) -> np.ndarray | None:
        """Budgets -> level index per strategy; None if the policy cannot produce them."""
        if any(b and s not in self._col for s, b in budgets.items()):
            return None
        idx = [self._lvl.get(int(budgets.get(s, 0)), -1) for s in self.strategies]
        return None if min(idx) < 0 else np.array(idx)

    def _p_nonempty(self, logq: np.ndarray, av: np.ndarray) -> np.ndarray:
        """P(module plan non-empty | masked), accurately near 1 and near 0: -expm1(sum log q_s(0))."""
        return -np.expm1(np.where(av, logq[..., 0], 0.0).sum(axis=-1))

    def _propensities(self, logq: np.ndarray, av: np.ndarray, idx: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Vectorised formula of the module docstring: logq (N,n,L), av (N,n), idx (N,n), ok (N,)."""
        m = av.sum(axis=1)
        size = np.where(m > 0, float(len(self.levels)) ** m - 1, 0.0)
        idx = np.where(ok[:, None], idx, 0)
        nonempty = (idx > 0).any(axis=1)
        reachable = ok & ~((idx > 0) & ~av).any(axis=1)
        lp = np.where(av, np.take_along_axis(logq, idx[..., None], axis=2)[..., 0], 0.0).sum(axis=1)
        p_ne = self._p_nonempty(logq, av)
        fallback = p_ne < self.MIN_NONEMPTY
        with np.errstate(divide="ignore", invalid="ignore"):
            uni = np.where(size > 0, 1.0 / np.maximum(size, 1.0), 0.0)
            mod = np.where(fallback, uni, np.exp(lp) / np.where(fallback, 1.0, p_ne))
        near = np.array([self._near_p(logq[i], av[i], idx[i]) if ok[i] else 0.0 for i in range(len(idx))])
        p = (1.0 - self.epsilon) * mod + self.epsilon * near
        p = np.where(reachable & nonempty, p, 0.0)
        return np.where(m == 0, (reachable & ~nonempty).astype(float), p)  # nothing up: the empty plan, surely

    def propensity(self, budgets: dict[str, int], features: np.ndarray, available: Sequence[str]) -> float:
        """Probability that `plan` serves exactly `budgets` for this context."""
        return float(self.propensities([budgets], self._features(features, batched=False)[None], [available])[0])

    def prob(self, budgets: dict[str, int], ctx: PolicyContext) -> float:
        """`Policy` protocol: the probability that `plan(ctx)` returns `budgets`."""
        return self.propensity(budgets, ctx.features, ctx.available)

    def propensities(self, budgets_list: Sequence[dict[str, int]], features_matrix: np.ndarray,
                     available_list: Sequence[Sequence[str]]) -> np.ndarray:
        """`propensity` for N logged plans at once (one forward pass): shape (N,)."""
        x = self._features(features_matrix, batched=True)
        if not (len(budgets_list) == len(x) == len(available_list)):
            raise ValueError(f"length mismatch: {len(budgets_list)} plans, {len(x)} feature rows, "
                             f"{len(available_list)} availability lists")
        idx = [self._indices(b) for b in budgets_list]
        ok = np.array([i is not None for i in idx], dtype=bool)
        idx_arr = np.stack([i if i is not None else np.zeros(len(self.strategies), int) for i in idx])
        av = np.stack([self._avail(a) for a in available_list])
        return self._propensities(self._log_probs(x, av), av, idx_arr, ok)

    def distribution(self, features: np.ndarray, available: Sequence[str]) -> np.ndarray:
        """The served probability of every plan, shape (n_levels,)*n_strategies in C order (as
        `ReplayBanditEnv.table`); sums to 1. For exact expected rewards and DR's v_hat."""
        av = self._avail(available)
        logq = self._log_probs(self._features(features, batched=False)[None], av[None])[0]
        n, L = len(self.strategies), len(self.levels)
        if not av.any():
            out = np.zeros((L,) * n)
            out[(0,) * n] = 1.0
            return out
        lp = np.zeros((L,) * n)
        for k in np.flatnonzero(av):
            lp = lp + logq[k].reshape((1,) * k + (L,) + (1,) * (n - k - 1))
        reach = np.zeros((L,) * n, dtype=bool)  # non-empty plans calling only available strategies
        reach[tuple(slice(None) if a else slice(0, 1) for a in av)] = True
        reach[(0,) * n] = False
        size = self.space.size(available)
        p_ne = float(self._p_nonempty(logq, av))
        mod = np.where(reach, 1.0 / size, 0.0) if p_ne < self.MIN_NONEMPTY else np.where(reach, np.exp(lp), 0.0) / p_ne
        g = self._greedy_idx(logq, av)
        near = self.space.near_probs({s: int(self.levels[i]) for s, i in zip(self.strategies, g)},
                                     [s for s, a in zip(self.strategies, av) if a]).reshape((L,) * n)
        return (1.0 - self.epsilon) * mod + self.epsilon * near

    def plan_probs(self, ctx: PolicyContext) -> np.ndarray:
        """`distribution` flattened to `ActionSpace.grid()` order (the Policy protocol)."""
        return self.distribution(ctx.features, ctx.available).ravel()

    # ---- serving ---------------------------------------------------------------------------------------

    def _sample_nonempty(self, logq: np.ndarray, av: np.ndarray) -> np.ndarray:
        """Exact draw of level indices from P_mod conditioned on non-empty (caller checked P(non-empty))."""
        q = np.exp(logq)
        up = np.flatnonzero(av)
        # tail[j] = P(some of up[j:] non-zero); tail[len(up)] = 0
        tail = np.append(-np.expm1(np.cumsum(logq[up[::-1], 0])[::-1]), 0.0)
        idx = np.zeros(len(self.strategies), dtype=int)
        done = False
        for j, k in enumerate(up):
            w = q[k].copy()
            if not done:  # still all zero so far: the rest must make the plan non-empty
                w[0] *= tail[j + 1]
            c = np.cumsum(w)
            idx[k] = min(int(np.searchsorted(c, self.rng.random() * c[-1], side="right")), len(w) - 1)
            done = done or idx[k] > 0
        return idx

    def plan(self, ctx: PolicyContext) -> Plan:
        x = self._features(ctx.features, batched=False)
        av = self._avail(ctx.available)
        if not av.any():
            return Plan(budgets={s: 0 for s in self.strategies}, propensity=1.0, policy_version=self.version)
        logq = self._log_probs(x[None], av[None])[0]
        explore = self.rng.random() < self.epsilon
        if explore:
            g = self._greedy_idx(logq, av)
            options = self.space.near({s: int(self.levels[i]) for s, i in zip(self.strategies, g)}, ctx.available)
            budgets = options[int(self.rng.integers(len(options)))]
            idx = np.array([self._lvl[budgets[s]] for s in self.strategies])
        elif self._p_nonempty(logq, av) < self.MIN_NONEMPTY:
            budgets = self.space.sample_uniform(self.rng, ctx.available)
            idx = np.array([self._lvl[budgets[s]] for s in self.strategies])
        else:
            idx = self._sample_nonempty(logq, av)
            budgets = {s: int(self.levels[i]) for s, i in zip(self.strategies, idx)}
        p = float(self._propensities(logq[None], av[None], idx[None], np.array([True]))[0])
        assert 0.0 < p <= 1.0 + 1e-12, (budgets, p)
        return Plan(budgets=budgets, propensity=min(p, 1.0), policy_version=self.version)

    def greedy(self, features: np.ndarray, available: Sequence[str]) -> dict[str, int]:
        """The module's most likely non-empty plan among available strategies: what held-out
        evaluation serves, and the centre of epsilon's exploration."""
        av = self._avail(available)
        logq = self._log_probs(self._features(features, batched=False)[None], av[None])[0]
        idx = self._greedy_idx(logq, av)
        return {s: int(self.levels[i]) for s, i in zip(self.strategies, idx)}

    def _greedy_idx(self, logq: np.ndarray, av: np.ndarray) -> np.ndarray:
        idx = np.where(av, logq.argmax(axis=1), 0)
        if av.any() and not idx.any():
            # argmax is the empty plan: the best non-empty plan switches on the one strategy that loses least
            gain = np.where(av, logq[:, 1:].max(axis=1) - logq[:, 0], -np.inf)
            k = int(gain.argmax())
            idx[k] = 1 + int(logq[k, 1:].argmax())
        return idx

    def _near_p(self, logq: np.ndarray, av: np.ndarray, idx: np.ndarray) -> float:
        """Near_g(b) for level indices `idx` (see the module docstring)."""
        if not av.any():
            return 0.0
        g = self._greedy_idx(logq, av)
        diff = np.flatnonzero(idx != g)
        if len(diff) != 1 or not av[diff[0]] or abs(int(idx[diff[0]]) - int(g[diff[0]])) != 1 or not idx.any():
            return 0.0
        n_near = len(self.space.near({s: int(self.levels[i]) for s, i in zip(self.strategies, g)},
                                     [s for s, a in zip(self.strategies, av) if a]))
        return 1.0 / n_near
