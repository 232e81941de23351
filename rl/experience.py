"""Every logged request as training experience for the bandit, and as a decision for OPE.

A served request knows the gain of each sub-plan of its plan (semi-bandit feedback,
`rl.reward.known_mask`), a shadow request every plan's. `experience` turns each request
into a `LoggedContext` whose gain table is exact where known and completed by a
`RewardModel` fitted on all of them elsewhere, and into a `LoggedDecision` for the
off-policy estimates: features, the served plan, its logged propensity, the reward of its
own events, the completed reward table (DR's q), the same table before completion (exact
where known, what the fetched lists held elsewhere, no model: the gate's `lower` bound,
`rl.promotion`) and, for a shadow request, the exact one. Nothing is thrown away: the
policy learns from every request, not only the shadow share.

What a request's users acted on, for training: its own events, plus the items users
acted on positively in any logged request with the same (normalised) query text
(`query_positives`). A user can only act on what was shown, so a request's own events say
nothing about an item that only an unserved strategy found; the same query's other
requests, served other plans, often do. This is the aggregated click label of learning to
rank, applied to retrieval: the shadow fetch tells which strategies found an item, the
query's click history tells whether it was wanted. (DR's observed rewards are a
request's own events, its q these labels: a candidate that leaves the served plan is
credited by the labels, the serving policy by its own events, one reason the gate does not
decide on DR.)

Where the acted items sit: with the ranker's scores of each request's logged candidates
(`scores`, computed by the caller with the serving ranker: `learning.retrain`, the bench),
at their ranked position under each plan, as the user of that plan sees them, in the order
the ranker gives each plan's own strategies (`rescore`); without, at their rank in the
strategies' lists (`rl.reward`).

Events on entities shown beside the results count on the result items each entity was
shown through, with its weight shared among them (`rl.reward.acted_items`, `core.credit`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.records import EventRecord, RequestRecord
from core.text import normalize
from rl.click_model import ClickModelFit, full_scores
from rl.cost import CostModel
from rl.env import LoggedContext
from rl.features import DIM, FEATURE_NAMES, REGIME_FEATURE
from rl.policy import ActionSpace
from rl.promotion import LoggedDecision
from rl.reward import (
    RewardConfig,
    SupportOrders,
    acted_items,
    gain_table,
    known_mask,
    plan_reward,
    returned_counts,
    reward_table,
)
from rl.reward_model import RewardModel

Rescore = Callable[[RequestRecord], SupportOrders]


@dataclass
class Experience:
    """The contexts (for training), the decisions (for OPE) and the fitted reward model."""

    contexts: list[LoggedContext]
    decisions: list[LoggedDecision]
    model: RewardModel
    known_share: float  # mean share of plans whose gain was exact

    @property
    def full_information(self) -> int:
        return sum(c.full for c in self.contexts)


def query_positives(requests: Sequence[RequestRecord], events: Mapping[str, Sequence[EventRecord]],
                    cfg: RewardConfig) -> dict[str, dict[str, float]]:
    """normalised query -> item -> its label from the query's requests (`cfg.query_labels`): the
    largest positive event weight on it in any of `requests` ('max'), or the mean weight over the
    requests that showed or acted on it ('rate')."""
    rate = cfg.query_labels == "rate"
    labels: dict[str, dict[str, float]] = {}  # 'max': the largest weight; 'rate': the sum, divided below
    shown: dict[str, dict[str, int]] = {}  # 'rate': how many of the query's requests showed or acted on each item
    for r in requests:
        q = normalize(r.query)
        acted = acted_items(list(events.get(r.request_id, [])), cfg, r.entity_via())
        if rate:
            seen = shown.setdefault(q, {})
            for item in set(r.shown) | set(acted):
                seen[item] = seen.get(item, 0) + 1
        for item, w in acted.items():
            if w > 0:
                got = labels.setdefault(q, {})
                got[item] = got.get(item, 0.0) + w if rate else max(w, got.get(item, w))
    if rate:
        return {q: {i: w / shown[q][i] for i, w in items.items()} for q, items in labels.items()}
    return labels


def experience(requests: Sequence[RequestRecord], events: Mapping[str, Sequence[EventRecord]], space: ActionSpace,
               cfg: RewardConfig, cost: CostModel, dim: int | None = None, model: RewardModel | None = None,
               scores: Mapping[str, Mapping[str, float]] | None = None, bounds: bool = False,
               rescore: Rescore | None = None, clicks: ClickModelFit | None = None) -> Experience:
    """See the module docstring. Requests whose features do not have `dim` entries (an older
    feature layout) or that called nothing are skipped. A given `model` (fitted on other,
    e.g. older, requests) completes the tables instead of one fitted on these. `scores`
    (request id -> item -> the ranker's score of the logged candidate) discount gains by
    ranked position (`rl.reward`); requests without scores use the retrieval rank. `rescore`
    (a request -> the ranker's scores per set of strategies, `rl.reward.gain_table`'s
    `by_support`) orders each plan's items as the ranker orders its own strategies' lists;
    asked only for requests with acted items (the others gain nothing under any plan). `bounds`:
    give each decision its uncompleted table (float32, 61 KB at 6 strategies: only the
    requests the gate judges on need it). `clicks` (with `rescore`): every plan's gain is what
    the fitted click model expects its page to earn (`rl.click_model`), not the logged clicks
    and the query's aggregated ones; DR's observed rewards stay the request's own events."""
    scores = scores or {}
    rows = []
    positives = query_positives(requests, events, cfg)
    for r in requests:
        if (dim is not None and len(r.features) != dim) or not any(r.plan.budgets.values()):
            continue
        own = acted_items(list(events.get(r.request_id, [])), cfg, r.entity_via())
        acted = {**positives.get(normalize(r.query), {}), **own}
        returned = returned_counts(r.candidates)
        logged = scores.get(r.request_id)
        if clicks is not None and rescore is not None and logged is not None:
            orders = rescore(r)
            gains = gain_table(r.candidates, clicks.weights(full_scores(orders)), space, cfg, scores=logged,
                               by_support=orders, examination=clicks.eta)
        else:
            support = rescore(r) if rescore is not None and logged is not None and acted else None
            gains = gain_table(r.candidates, acted, space, cfg, scores=logged, by_support=support)
        known = known_mask(r.depth, returned, space)
        rows.append((r, own, returned, gains, known))
    if not rows:
        raise ValueError(f"no usable logged requests (of {len(requests)}) to learn from")
    split = FEATURE_NAMES.index(REGIME_FEATURE) if dim == DIM else None
    model = model or RewardModel(split=split, costs=cost.table(space).ravel()).fit(
        [np.asarray(r.features) for r, *_ in rows], [row[3] for row in rows], [row[4] for row in rows])
    contexts, decisions, shares = [], [], []
    for r, own, returned, gains, known in rows:
        x = np.asarray(r.features, dtype=np.float32)
        full = bool(known.all())
        completed = model.complete(x, gains, known)
        available = tuple(s for s in space.strategies if s not in r.failed)
        contexts.append(LoggedContext(x, completed, returned, available, r.request_id, full, dict(r.depth)))
        table = reward_table(completed, cost, space, cfg, returned).ravel()
        reward = plan_reward(r.served(), own, r.plan.budgets, cost, cfg, scores.get(r.request_id))  # what its users did
        decisions.append(LoggedDecision(x, dict(r.plan.budgets), r.plan.propensity, reward, available,
                                        r.plan.shadow and full, table if full else None, model=table,
                                        bound=reward_table(gains, cost, space, cfg, returned).ravel()
                                        .astype(np.float32) if bounds else None))
        shares.append(float(known.mean()))
    return Experience(contexts, decisions, model, float(np.mean(shares)))
