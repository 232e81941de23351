"""A reward model of (context, plan): predicts the gain of every plan from the context features.

Why: only shadow requests know the gain of every plan; a served request knows its own
plan's sub-plans exactly (`rl.reward.known_mask`) and nothing beyond them. The model,
fitted on the full-information contexts, fills in the unknown plans of every other
request, so the policy's warm start learns from every request (`rl.experience`), and it
is the direct part of the doubly robust estimate (`rl.promotion`).

Model: multi-output ridge regression from standardised features (plus an unshrunk bias) to
the flattened gain table, W = (X'X + alpha I)^-1 X'Y, one solve for all plans; a context's
features are clipped to the range seen in training before they are standardised. Unless
given, alpha is chosen on the most recent full-information contexts, by the value of the
greedy plans it picks there (`forward_alpha`): a strength fixed for one log overfits
another. Fifty-two features and tens of full-information new-query contexts fitted at
alpha 10 routed SciFact's held-out queries to plans of nDCG@10 0.35, where every plan's
mean gain (alpha -> infinity) routes them to lexical search at 0.68. `complete` keeps a
request's exact entries and shifts the prediction of the rest by the mean residual on the
known entries: a request whose known plans did better than predicted is assumed to do
correspondingly better on the others (a per-context offset, as in DR).
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

from collections.abc import Callable, Sequence

import numpy as np

ALPHAS = tuple(10.0 ** k for k in range(-1, 7))  # strengths tried (standardised features); the last ~ plan means
PRICES = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)  # reward per 10 ms at which a strength's greedy decisions are valued
RECENT = 0.3  # share of the full-information contexts (the most recent) that a strength is validated on
MIN_VALIDATE = 3  # fewer recent contexts than this: no validation, the strongest shrinkage


def _ridge(Z: np.ndarray, Y: np.ndarray) -> Callable[[float], np.ndarray]:
    """Ridge of Y on standardised Z with an unshrunk bias, for any strength (one SVD): strength ->
    weights (d + 1, outputs), the bias last, applied as [z, 1] @ w."""
    U, sv, Vt = np.linalg.svd(Z, full_matrices=False)
    mean = Y.mean(0)
    UtY = U.T @ (Y - mean)
    return lambda a: np.vstack([Vt.T @ ((sv / (sv ** 2 + a))[:, None] * UtY), mean])


def forward_alpha(Z: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None
                  ) -> tuple[float, dict[float, float]]:
    """The ridge strength that served the most recent contexts best, and each strength's score.

    Rows are in log order. Each strength is fitted on the older (1 - RECENT) of the rows and
    scored on the recent rest: by the mean reward (gain minus price x cost / 10 ms) of the
    greedy plans it picks there, summed over PRICES, when `costs` ((plans,) or (rows,
    plans), ms) are given; else by minus the mean squared error. Why the recent rows and not
    leave-one-out: the policy serves the future, and a log's clock-like features (time of
    day, a user's request count, global hit rates) only grow over a stream; leave-one-out
    rewards extrapolating them and chose a strength that routed SciFact's held-out queries to
    plans of nDCG@10 0.35. Why the decisions' value and not the error: the policy takes an
    argmax over thousands of plans, and a strength with a small error can still pick, in each
    context, the plan whose error is most optimistic. Why the one-standard-error rule (Hastie,
    Tibshirani, Friedman, ESL 7.10): a few dozen recent contexts rank strengths noisily, and
    the strongest shrinkage whose score is within one paired standard error of the best is
    the choice that the data do not contradict (SciFact's 18 recent new-query contexts scored
    alpha 10 above the plan means by less than that; on held-out queries it lost 0.33 nDCG@10)."""
    n = len(Z)
    cut = round(n * (1.0 - RECENT))
    if n - cut < MIN_VALIDATE or cut < 2:
        return ALPHAS[-1], {}
    weights = _ridge(Z[:cut], Y[:cut])
    recent, truth = np.hstack([Z[cut:], np.ones((n - cut, 1))]), Y[cut:]
    rows = np.arange(len(truth))
    cost = None if costs is None else np.broadcast_to(np.asarray(costs, dtype=np.float64).reshape(-1, Y.shape[1]),
                                                      Y.shape)[cut:]
    per_row: dict[float, np.ndarray] = {}  # each strength's score of each recent row
    for a in ALPHAS:
        pred = recent @ weights(a)
        if cost is None:
            per_row[a] = -((pred - truth) ** 2).mean(axis=1)
            continue
        pred[:, 0] = -np.inf  # the empty plan is never served
        per_row[a] = sum(truth[rows, pick] - p / 10.0 * cost[rows, pick]
                         for p in PRICES for pick in [(pred - p / 10.0 * cost).argmax(axis=1)])
    scores = {a: float(v.mean()) for a, v in per_row.items()}
    best = max(ALPHAS, key=lambda a: (scores[a], a))
    # the one-standard-error rule: the strongest shrinkage within one paired standard error of the best
    se = {a: float(np.std(per_row[best] - v, ddof=1) / np.sqrt(len(v))) for a, v in per_row.items()}
    return max(a for a in ALPHAS if scores[a] >= scores[best] - se[a]), scores


class RewardModel:
    """Predict a context's gain table; complete a partly known one (see the module docstring)."""

    def __init__(self, alpha: float | None = None, min_full: int = 10, split: int | None = None,
                 costs: np.ndarray | None = None):
        self.alpha, self.min_full, self.split, self.costs = alpha, min_full, split, costs
        self.chosen: float | None = None  # the alpha fitted (given, or chosen by `forward_alpha`)
        self.scores: dict[float, float] = {}  # forward_alpha's score of each strength
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
                self.parts = {v: RewardModel(self.alpha, self.min_full, costs=self._rows(side == v)).fit(
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
            Zs = (X - self.mu) / self.sd
            self.chosen = self.alpha
            if self.chosen is None:
                self.chosen, self.scores = forward_alpha(Zs, T[full], self._rows(full))
            self.w = _ridge(Zs, T[full])(self.chosen)
        return self

    def _rows(self, mask: np.ndarray) -> np.ndarray | None:
        """The cost tables of the contexts in `mask` (a shared (plans,) table as is)."""
        if self.costs is None or np.ndim(self.costs) == 1:
            return self.costs
        return np.asarray(self.costs).reshape(len(mask), -1)[mask]

    @property
    def alphas(self) -> dict[str, float | None]:
        """The fitted strength of each part ("split=0" / "split=1" sides, else "all"), for reports."""
        if self.parts:
            return {f"split={int(v)}": m.chosen for v, m in self.parts.items()}
        return {"all": self.chosen}

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
