"""Off-policy evaluation: the value of a target policy estimated from a behaviour policy's logs.

Why: a new retrieval policy must not be promoted on faith. The serving policy logs the
exact propensity of every plan it served (`rl.policy`), so the expected reward of any
other policy can be estimated from those logs without serving it.

Inputs per logged sample i: reward r_i, behaviour propensity p_i of the logged action,
target probability pi_i of that same action, and (DR) the reward model's prediction
q_hat_i for the logged action and v_hat_i = sum_a pi(a|x_i) q_hat(x_i, a). With
importance weights w_i = pi_i / p_i (optionally clipped to `max_weight`, which biases
the estimate but bounds its variance):

    IPS   = mean(w_i r_i)
    SNIPS = sum(w_i r_i) / sum(w_i)
    DR    = mean(v_hat_i + w_i (r_i - q_hat_i))

Each estimate carries per-sample influence terms z_i with value == mean(z) and a 95%
normal-approximation CI value +- 1.96 std(z, ddof=1) / sqrt(n). For IPS and DR z_i is
the summand itself. For SNIPS (a ratio) the delta method gives
z_i = V + w_i (r_i - V) / mean(w), whose mean is exactly V: deterministic, no bootstrap.
`compare` uses the same terms, paired sample by sample when both estimates come from
the same logs, so the CI of a difference accounts for their correlation.
`ess` is Kish's effective sample size (sum w)^2 / sum w^2 of the (clipped) weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Two-sided 95% standard normal quantile.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A policy-value estimate with its 95% CI, sample size and weight diagnostics."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    ess: float
    estimator: str = ""
    max_weight: float | None = None
    n_clipped: int = 0
    terms: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def stderr(self) -> float:
        return (self.ci_high - self.ci_low) / (2 * Z95)


def _arr(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values")
    return a


def _weights(rewards: Any, behaviour_p: Any, target_p: Any, max_weight: float | None
             ) -> tuple[np.ndarray, np.ndarray, int]:
    r, p, pi = _arr(rewards, "rewards"), _arr(behaviour_p, "behaviour_p"), _arr(target_p, "target_p")
    if not (len(r) == len(p) == len(pi)):
        raise ValueError(f"length mismatch: rewards {len(r)}, behaviour_p {len(p)}, target_p {len(pi)}")
    if len(r) < 2:
        raise ValueError("need at least 2 samples for a confidence interval")
    if ((p <= 0) | (p > 1)).any():
        raise ValueError("behaviour propensities must be in (0, 1]")
    if ((pi < 0) | (pi > 1)).any():
        raise ValueError("target probabilities must be in [0, 1]")
    if max_weight is not None and max_weight <= 0:
        raise ValueError("max_weight must be positive")
    w = pi / p
    n_clipped = 0
    if max_weight is not None:
        n_clipped = int((w > max_weight).sum())
        w = np.minimum(w, max_weight)
    return r, w, n_clipped


def _ess(w: np.ndarray) -> float:
    s2 = float((w ** 2).sum())
    return float(w.sum()) ** 2 / s2 if s2 > 0 else 0.0


def _from_terms(z: np.ndarray, w: np.ndarray, name: str, max_weight: float | None, n_clipped: int,
                value: float | None = None) -> Estimate:
    v = float(z.mean()) if value is None else value
    half = Z95 * float(z.std(ddof=1)) / np.sqrt(len(z))
    return Estimate(value=v, ci_low=v - half, ci_high=v + half, n=len(z), ess=_ess(w), estimator=name,
                    max_weight=max_weight, n_clipped=n_clipped, terms=z)


def ips(rewards: Any, behaviour_p: Any, target_p: Any, max_weight: float | None = None) -> Estimate:
    """Inverse propensity scoring: mean(w r). Unbiased without clipping; high variance when w is large."""
    r, w, nc = _weights(rewards, behaviour_p, target_p, max_weight)
    return _from_terms(w * r, w, "ips", max_weight, nc)


def snips(rewards: Any, behaviour_p: Any, target_p: Any, max_weight: float | None = None) -> Estimate:
    """Self-normalised IPS: sum(w r) / sum(w). Slightly biased, far less variance; CI by the delta method."""
    r, w, nc = _weights(rewards, behaviour_p, target_p, max_weight)
    if w.sum() <= 0:
        raise ValueError("SNIPS undefined: the target policy gives probability 0 to every logged action")
    v = float((w * r).sum() / w.sum())
    z = v + w * (r - v) / w.mean()
    return _from_terms(z, w, "snips", max_weight, nc, value=v)


def doubly_robust(rewards: Any, behaviour_p: Any, target_p: Any, q_hat: Any, v_hat: Any,
                  max_weight: float | None = None) -> Estimate:
    """Doubly robust: mean(v_hat + w (r - q_hat)). Unbiased if either the propensities or the
    reward model are right; the better the reward model, the smaller the variance."""
    r, w, nc = _weights(rewards, behaviour_p, target_p, max_weight)
    q, v = _arr(q_hat, "q_hat"), _arr(v_hat, "v_hat")
    if not (len(q) == len(v) == len(r)):
        raise ValueError(f"length mismatch: rewards {len(r)}, q_hat {len(q)}, v_hat {len(v)}")
    return _from_terms(v + w * (r - q), w, "doubly_robust", max_weight, nc)


def compare(target: Estimate, serving: Estimate, tolerance: float = 0.0) -> dict[str, Any]:
    """target - serving with a 95% CI; `not_worse` iff the CI's lower bound > -tolerance.

    Paired (CI from per-sample differences of influence terms) when both estimates hold
    terms of equal length, i.e. were computed on the same logs; otherwise the two are
    treated as independent (se = sqrt(se_t^2 + se_s^2))."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    diff = target.value - serving.value
    paired = len(target.terms) == len(serving.terms) == target.n == serving.n and target.n >= 2
    if paired:
        d = target.terms - serving.terms
        se = float(d.std(ddof=1)) / np.sqrt(len(d))
    else:
        se = float(np.hypot(target.stderr, serving.stderr))
    lo, hi = diff - Z95 * se, diff + Z95 * se
    return {"difference": diff, "ci_low": lo, "ci_high": hi, "stderr": se, "paired": paired,
            "tolerance": tolerance, "not_worse": bool(lo > -tolerance),
            "target": target.value, "serving": serving.value}
