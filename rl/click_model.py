"""A position-based click model fitted on the request log: what any plan's page would earn.

Why: a plan's reward is what its users do with the page it shows (`rl.reward`), and the log
holds only what users did with the pages that were served. Valued on logged clicks, a plan
that shows items nobody was shown gets no credit for them (own events: a lower bound), and
valued on the query's clicks in other requests, every item ever clicked counts at full
weight, so every plan that fills the page with them looks alike. Measured on a music-demo
drift stream (600 requests, each plan also run on the same users): the best plan earned
1.655 per request and the served cold-start plan 1.612; own events put them at 1.515 and
1.609, the aggregated clicks at 2.868 and 3.129. Neither ranks them as they earned.

The click model: a user examines position p with probability p**-eta and, having looked,
acts on item i with expected weight v(s_i), where s_i is the serving ranker's score of the
item with every strategy's evidence the request fetched (the full support of
`learning.retrain.support_scorer`) and log v is a linear spline in the score (knots at
quantiles of the shown items' scores, flat beyond them). So

    E[weight on the item at position p] = exp(log v(s_i) - eta * log p),

a Poisson regression with a log link on the logged impressions (each shown item at its
position, its largest acted weight, 0 if none), fitted by iteratively reweighted least
squares. This is the position-based model of click-model based evaluation (Chuklin,
Serdyukov and de Rijke, 2013), with attractiveness tied to the ranker's score so it extends
to items never shown. A plan's expected gain is then `rl.reward.gain_table` with every
fetched item weighted v(s_i) and the discount multiplied by p**-eta (`examination`).

It is a model: right where the ranker's scores say how attractive an item is, and its
position curve is the one shape it can fit. How close it comes, plan by plan: README.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.records import EventRecord, RequestRecord
from rl.reward import RewardConfig, SupportOrders, acted_items

#: Newton steps of the fit (it converges in well under this on logs of any size seen so far).
MAX_STEPS = 50
#: Knots of the attractiveness curve: these quantiles of the shown items' scores.
KNOT_QUANTILES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


class ClickModelFit(BaseModel):
    """The fitted position-based model (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    eta: float = Field(description="examination falls as position**-eta")
    knots: list[float] = Field(description="ranker scores at which the log expected weight is fitted (increasing)")
    levels: list[float] = Field(description="log expected weight of an examined item at each knot; linear in the "
                                "score between knots, flat beyond the first and last")
    impressions: int = Field(ge=0, description="shown items the model was fitted on")

    def weights(self, scores: Mapping[str, float]) -> dict[str, float]:
        """item -> its expected weight if examined: exp of the fitted curve at its score."""
        ids = list(scores)
        s = np.array([scores[i] for i in ids], dtype=np.float64)
        log_v = _basis(s, np.asarray(self.knots)) @ np.asarray(self.levels)
        return dict(zip(ids, np.exp(np.clip(log_v, -30.0, 10.0)).tolist()))


def _basis(s: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Hat functions at `knots` (a linear spline, flat outside them): shape (len(s), len(knots))."""
    B = np.zeros((len(s), len(knots)))
    if len(knots) == 1:
        B[:, 0] = 1.0
        return B
    s = np.clip(s, knots[0], knots[-1])
    k = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, len(knots) - 2)
    t = (s - knots[k]) / (knots[k + 1] - knots[k])
    rows = np.arange(len(s))
    B[rows, k], B[rows, k + 1] = 1.0 - t, t
    return B


def full_scores(orders: SupportOrders) -> Mapping[str, float]:
    """The ranker's scores with every strategy the request fetched (its largest support), at the
    fetched depth where a deeper fetch was made: the best evidence of each item's relevance."""
    pool = [*orders.deep.items(), *orders.served.items()]
    if not pool:
        return {}
    return max(pool, key=lambda kv: (len(kv[0]), kv[0] in orders.deep))[1]


def fit_click_model(requests: Sequence[RequestRecord], events: Mapping[str, Sequence[EventRecord]],
                    cfg: RewardConfig, orders: Mapping[str, SupportOrders]) -> ClickModelFit:
    """Fit on every request in `orders` (request id -> its `SupportOrders`): each shown item at
    its position, with its largest positive acted weight. ValueError without a single acted
    impression (nothing to fit)."""
    rows: list[tuple[float, float, float]] = []
    for r in requests:
        if r.request_id not in orders:
            continue
        fs = full_scores(orders[r.request_id])
        acted = acted_items(list(events.get(r.request_id, [])), cfg, r.entity_via())
        for p, item in enumerate(r.shown, 1):
            if item in fs:
                rows.append((np.log(p), fs[item], max(acted.get(item, 0.0), 0.0)))
    if not rows or not any(y > 0 for *_, y in rows):
        raise ValueError(f"no acted impression to fit the click model on ({len(rows)} impressions)")
    logp, s, y = (np.array(c, dtype=np.float64) for c in zip(*rows))
    knots = np.unique(np.quantile(s, KNOT_QUANTILES))
    X = np.column_stack([_basis(s, knots), -logp])  # beta = (levels at the knots, eta)
    beta = np.r_[np.full(len(knots), np.log(max(y.mean(), 1e-6))), 0.0]
    for _ in range(MAX_STEPS):  # Newton on the Poisson log-likelihood (IRLS), a whisker of ridge
        mu = np.exp(np.clip(X @ beta, -30.0, 10.0))
        step = np.linalg.solve(X.T @ (X * mu[:, None]) + 1e-6 * np.eye(X.shape[1]), X.T @ (y - mu))
        beta = beta + step
        if np.abs(step).max() < 1e-8:
            break
    return ClickModelFit(eta=float(beta[-1]), knots=knots.tolist(), levels=beta[:-1].tolist(), impressions=len(rows))
