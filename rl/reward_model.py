"""A reward model of (context, plan): predicts the gain of every plan from the context features.

Why: only shadow requests know the gain of every plan; a served request knows its own
plan's sub-plans exactly (`rl.reward.known_mask`) and nothing beyond them. The model,
fitted on the full-information contexts, fills in the unknown plans of every other
request, so the policy's warm start learns from every request (`rl.experience`), and it
is the direct part of the doubly robust estimate (`rl.promotion`).

Model: multi-output ridge regression from standardised features (plus a bias) to the
flattened gain table, W = (X'X + alpha I)^-1 X'Y, one solve for all plans; a context's
features are clipped to the range seen in training before they are standardised. `complete`
keeps a request's exact entries and shifts the prediction of the rest by the mean
residual on the known entries: a request whose known plans did better than predicted is
assumed to do correspondingly better on the others (a per-context offset, as in DR).
With too few full-information contexts to fit (fewer than `min_full`), the model is the
per-plan mean over the contexts that know each plan.

`split` (a binary feature's index): one model per side of it, when each side has
`min_full` full-information contexts. `rl.experience` and the warm start split on
`query_acted_before`: a query users acted on before is one the click-learned memory (and
the click-fed popularity prior) answer, a new one is not, and a linear model over both
carried the repeats' gains for deep memory and popularity plans into new queries' unknown
plans (Cranfield, a 1,000-request stream: the direct method's greedy plans for held-out
queries were popularity100 and explore100, nDCG@10 0.17 to 0.22 against 0.36 for
lexical10+structured10).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RewardModel:
    """Predict a context's gain table; complete a partly known one (see the module docstring)."""

    def __init__(self, alpha: float = 10.0, min_full: int = 10, split: int | None = None):
        self.alpha, self.min_full, self.split = alpha, min_full, split
        self.parts: dict[bool, RewardModel] = {}  # one model per side of the split feature, when both can fit
        self.mean: np.ndarray | None = None  # per-plan fallback (flattened)
        self.w: np.ndarray | None = None
        self.mu = self.sd = self.lo = self.hi = None
        self.shape: tuple[int, ...] = ()
        self.n_full = 0

    def fit(self, features: Sequence[np.ndarray], tables: Sequence[np.ndarray], known: Sequence[np.ndarray]
            ) -> RewardModel:
        """Fit on contexts' gain tables with their known masks (the full ones drive the ridge)."""
        if not tables:
            raise ValueError("the reward model needs at least one logged context")
        if self.split is not None:
            side = np.array([float(np.ravel(f)[self.split]) > 0.5 for f in features])
            full = np.array([np.asarray(k, dtype=bool).all() for k in known])
            if min((full & side).sum(), (full & ~side).sum()) >= self.min_full:
                self.parts = {v: RewardModel(self.alpha, self.min_full).fit(
                    [f for f, s in zip(features, side) if s == v], [t for t, s in zip(tables, side) if s == v],
                    [k for k, s in zip(known, side) if s == v]) for v in (False, True)}
                self.shape, self.mean = self.parts[False].shape, self.parts[False].mean  # (no pooled fit)
                self.n_full = sum(m.n_full for m in self.parts.values())
                return self
        self.shape = tables[0].shape
        T = np.stack([np.asarray(t, dtype=np.float64).ravel() for t in tables])
        K = np.stack([np.asarray(k, dtype=bool).ravel() for k in known])
        self.mean = np.where(K.sum(0) > 0, (T * K).sum(0) / np.maximum(K.sum(0), 1), 0.0)
        full = K.all(axis=1)
        self.n_full = int(full.sum())
        if self.n_full >= self.min_full:
            X = np.stack([np.asarray(f, dtype=np.float64).ravel() for f in features])[full]
            self.lo, self.hi = X.min(0), X.max(0)
            self.mu, self.sd = X.mean(0), X.std(0) + 1e-6
            Z = np.hstack([(X - self.mu) / self.sd, np.ones((len(X), 1))])
            reg = self.alpha * np.eye(Z.shape[1])
            reg[-1, -1] = 1e-6  # do not shrink the bias
            self.w = np.linalg.solve(Z.T @ Z + reg, Z.T @ T[full])
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The predicted gain table of one context, shape like the fitted tables."""
        if self.mean is None:
            raise RuntimeError("fit the reward model first")
        if self.parts:
            return self.parts[float(np.ravel(features)[self.split]) > 0.5].predict(features)
        if self.w is None:
            return self.mean.reshape(self.shape).copy()
        z = np.append((self._clip(np.asarray(features, dtype=np.float64).ravel()) - self.mu) / self.sd, 1.0)
        return (z @ self.w).reshape(self.shape)

    def predict_many(self, features: np.ndarray) -> np.ndarray:
        """The predicted gain tables of N contexts (features (N, d)), flattened: shape (N, plans)."""
        if self.mean is None:
            raise RuntimeError("fit the reward model first")
        X = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if self.parts:
            side = X[:, self.split] > 0.5
            out = np.empty((len(X), self.mean.size))
            for v, part in self.parts.items():
                if (side == v).any():
                    out[side == v] = part.predict_many(X[side == v])
            return out
        if self.w is None:
            return np.broadcast_to(self.mean, (len(X), self.mean.size)).copy()
        Z = np.hstack([(self._clip(X) - self.mu) / self.sd, np.ones((len(X), 1))])
        return Z @ self.w

    def _clip(self, X: np.ndarray) -> np.ndarray:
        """Features clipped to the range seen in training: a feature nearly constant there (the
        hour of day of a short log) has a tiny spread, and a new value would be read as many
        standard deviations away, moving every prediction far outside anything observed."""
        return np.clip(X, self.lo, self.hi)

    def complete(self, features: np.ndarray, table: np.ndarray, known: np.ndarray) -> np.ndarray:
        """`table` where `known`, else the prediction shifted by the mean known residual."""
        pred = self.predict(features)
        known = np.asarray(known, dtype=bool)
        if known.all():
            return np.asarray(table, dtype=np.float64)
        shift = float((table[known] - pred[known]).mean()) if known.any() else 0.0
        out = np.where(known, table, pred + shift)
        out.flat[0] = 0.0  # the empty plan gains nothing
        return out
