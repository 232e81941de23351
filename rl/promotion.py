"""Off-policy evaluation gate: a new bandit serves only if its estimated value on recent
logs is not worse than the serving policy's.

Each logged decision carries the context features, the plan served, its exact
propensity under the mixture that served it, and the observed reward of that plan
(`rl.reward.plan_reward` over the logged candidates and the request's events). For a
policy we need its full distribution over plans in each logged context (the policy's
own `plan_probs`, the formula its logged propensities use): the IPS/SNIPS weights read
the served plan's probability from it, and the doubly robust estimate's direct part
averages a reward model over it.

The reward model is exact where it can be: a shadow request's log gives the reward of
every plan (`LoggedDecision.table`), so there q(x, a) is that table and DR's correction
term vanishes; elsewhere q(x, a) is the completed table of `rl.experience` (exact on the
served plan's sub-plans, `rl.reward_model` beyond them), or a context-free mean `q`.
DR stays unbiased with any model; a better one only narrows the interval.

A fourth estimate, `shadow`, is the exact expected reward of the policy on the shadow
contexts alone (now off-path: the shadow flag is drawn independently of the context and
of the served plan): sum_a pi(a|x) table_x[a], averaged. Shadow requests are a random share
of traffic chosen independently of the context, so this is an unbiased estimate of the
policy's value with no importance weights at all; its CI comes from the spread over
contexts.

The fifth, `lower`, is the one the gate decides on: the same exact expectation over *every*
held-out context, each plan valued at what the request fetched (`LoggedDecision.bound`:
exact for the served plan's sub-plans and on shadow contexts, elsewhere the gain of the items
the fetched lists held, at the plan's full cost). No reward model enters it. It is a lower
bound under retrieval-rank credit; under ranked credit an unfetched item could also rank
above an acted one, so there it is "what was fetched", not strictly a bound.
Why: DR's direct part is the reward model that completed the training tables, so a candidate
that moved to plans the logs never fetched was judged by the model whose optimism chose
those plans. Measured (music-demo latency drift, 2026-12-07, 200 requests between retrains):
with 24 full-information contexts the candidate served explore 25 + memory 10 to 59 % of
traffic; DR put it at +0.45 (+0.28..+0.62) over the cold-start plan, and the stream's reward
then fell from 1.6 to 0.74 per request. (DR is also on two scales: its model scores the
query's aggregated click labels, its observed rewards a request's own events, so any
candidate that leaves the served plan looks better.) Nor on `shadow` first, with enough
shadow contexts: on the new-items drift it promoted a policy at +0.18 (+0.003..+0.35) whose
reward then fell from 1.9 to 1.0 per request (not diagnosed; a suspect: the tables' aggregated
labels credit the memory strategy with the clicks it is built from). `lower` promotes a policy only where the logs show it is better: a move
to deeper plans needs the shadow contexts (or served requests) that fetched them. The
serving policy is bounded the same way, so the comparison stays paired.
With 15,624 plans, importance weights against a near-deterministic serving policy are so
extreme that IPS-style intervals rarely decide anything. Without bounds (logs from before
them) the gate decides on `shadow` with at least `MIN_SHADOW` shadow logs, else on `dr`: a
paired interval over three shadow contexts is no evidence (the quick bench's query-mix
drift, 2026-12-07: three contexts promoted a policy whose reward then fell from about 1.9 to
0.9 per request, below every fixed plan, for the rest of the stream).

Held out, so the estimate is not in-sample: a policy fitted to some contexts always looks
good on those same contexts. The caller (`learning.retrain`) trains the candidate on the
older requests and judges it on the newest `HOLDOUT` share, which it never saw.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl.ope import Z95, Estimate, compare, doubly_robust, ips, snips
from rl.policy import ActionSpace, Policy, PolicyContext

HOLDOUT = 0.25  # share of the newest logged requests kept out of training for the gate
MIN_SHADOW = 20  # shadow contexts the gate needs to decide on the exact `shadow` estimate


@dataclass
class LoggedDecision:
    """One served request, as OPE needs it."""

    features: np.ndarray
    budgets: dict[str, int]
    propensity: float
    reward: float
    available: tuple[str, ...]
    shadow: bool = False
    table: np.ndarray | None = None  # shadow requests: the reward of every plan (ActionSpace.grid order)
    model: np.ndarray | None = None  # the reward model's table for this context (DR's q); else the global q
    bound: np.ndarray | None = None  # every plan's reward from what was fetched: exact where known, else a lower bound


def reward_model(tables: Sequence[np.ndarray]) -> np.ndarray:
    """q(a): the mean reward of each plan over shadow contexts' reward tables (flattened)."""
    if not tables:
        raise ValueError("the reward model needs at least one shadow context")
    return np.mean([t.ravel() for t in tables], axis=0)


def _exact(name: str, values: Sequence[float]) -> Estimate:
    """The mean of per-context exact policy values, its CI from their spread."""
    z = np.asarray(values, dtype=np.float64)
    se = float(z.std(ddof=1)) / np.sqrt(len(z))
    return Estimate(value=float(z.mean()), ci_low=float(z.mean() - Z95 * se), ci_high=float(z.mean() + Z95 * se),
                    n=len(z), ess=float(len(z)), estimator=name, terms=z)


def estimate(policy: Policy, logs: Sequence[LoggedDecision], space: ActionSpace, q: np.ndarray,
             max_weight: float | None = 100.0) -> dict[str, Estimate]:
    """IPS, SNIPS and DR estimates of `policy`'s value on `logs`; `shadow` (the exact value on
    the logs that carry a reward table) when there are at least two of those; `lower` (every
    log's bound table) when every log carries one and there are at least two."""
    if not logs:
        raise ValueError("no logged decisions to evaluate on")
    r = np.array([d.reward for d in logs])
    p = np.array([d.propensity for d in logs])
    target, q_hat, v_hat, exact, lower = [], [], [], [], []
    for d in logs:
        dist = policy.plan_probs(PolicyContext(features=d.features, available=d.available))
        a = space.index(d.budgets)
        model = (np.asarray(d.table, dtype=np.float64).ravel() if d.table is not None
                 else q if d.model is None else np.asarray(d.model, dtype=np.float64).ravel())
        target.append(dist[a])
        q_hat.append(model[a])
        v_hat.append(float(dist @ model))
        if d.table is not None:
            exact.append(v_hat[-1])
        if d.bound is not None:
            lower.append(float(dist @ np.asarray(d.bound, dtype=np.float64).ravel()))
    t = np.array(target)
    out = {"ips": ips(r, p, t, max_weight),
           "dr": doubly_robust(r, p, t, np.array(q_hat), np.array(v_hat), max_weight)}
    if t.sum() > 0:  # SNIPS is undefined when the policy gives every logged plan probability 0, which
        out["snips"] = snips(r, p, t, max_weight)  # near-greedy exploration makes common; the rest stand
    if len(exact) >= 2:
        out["shadow"] = _exact("shadow", exact)
    if len(lower) == len(logs) >= 2:
        out["lower"] = _exact("lower", lower)
    return out


def _row(e: Estimate) -> dict[str, float]:
    return {"value": round(e.value, 5), "ci_low": round(e.ci_low, 5), "ci_high": round(e.ci_high, 5),
            "n": e.n, "ess": round(e.ess, 1)}


def gate(candidate: Policy, serving: Policy, logs: Sequence[LoggedDecision], space: ActionSpace, q: np.ndarray,
         tolerance: float = 0.02, estimator: str | None = None) -> dict[str, Any]:
    """Estimate both policies on the same logs; promote if the candidate is not worse by
    `estimator` (default: `lower` when every log carries its bound table; else `shadow` with
    at least MIN_SHADOW shadow logs, else `dr`): the lower bound of the paired 95% CI of
    (candidate - serving) is above -tolerance (`rl.ope.compare`). Returns a JSON-able record
    of the decision."""
    cand = estimate(candidate, logs, space, q)
    serv = estimate(serving, logs, space, q)
    exact = cand["shadow"].n if "shadow" in cand and "shadow" in serv else 0
    estimator = estimator or ("lower" if "lower" in cand else "shadow" if exact >= MIN_SHADOW else "dr")
    verdict = compare(cand[estimator], serv[estimator], tolerance)
    return {"promote": bool(verdict["not_worse"]), "estimator": estimator, "n_logs": len(logs), "shadow_logs": exact,
            "candidate": {k: _row(v) for k, v in cand.items()}, "serving": {k: _row(v) for k, v in serv.items()},
            "comparison": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in verdict.items()}}
