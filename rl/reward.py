"""The reward of a retrieval plan, recomputed offline from any logged request.

Why this works (semi-bandit feedback): every logged candidate keeps its provenance
(`Candidate.hits`: strategy -> rank), so a plan `{s: a_s}` within what the request
fetched (a_s <= depth_s, `RequestRecord.depth`) would have retrieved exactly the items
some called strategy ranked at or above a_s. The gain of every such sub-plan of a served
plan is therefore exact; a shadow request (every strategy fetched at the top budget off
the response path) knows the gain of every plan. Plans beyond what was fetched are
unknown (`known_mask`); `rl.reward_model` completes them.

Definitions (what the bandit maximises; `rank` is 1-based):

    union(plan)  = {i : exists s with a_s > 0 and rank_s(i) <= a_s},
                   best_rank(i) = min of those rank_s(i)
    gain(plan)   = sum over acted items i in union(plan) of w_i * d(best_rank(i))
                   d(r) = 1/log2(1 + r) ("log2", default), 1/r ("reciprocal") or 1 ("none")
    reward(plan) = gain(plan) - price_per_10ms * cost_ms(plan) / 10

With the ranker's scores of the logged candidates (`scores`, item -> score; the position
"ranked", the default) an item's discount is where the ranker puts it, not where a
strategy found it:

    pos(plan, i) = 1 + #{j in union(plan) ordered before i by score (ties: item id)}
    gain(plan)   = sum over acted items i in union(plan) with pos(plan, i) <= page
                   of w_i * d(pos(plan, i))

which is what the user of that plan sees: a relevant item found at rank 60 of one list and
put first by the ranker is worth a top click, and a plan whose extra candidates push the
acted items off the page loses them. With one set of scores (the whole logged fetch, one
ranker call per request), under a sub-plan the order is that order restricted to the
sub-plan's union, exact only when the ranker's scores do not depend on the plan. This
project's ranker's do (which strategies found an item, its RRF sum, scores relative to the
list), so the caller can give scores per support (`by_support`: for each set of strategies,
the ranker's scores of what those strategies fetched, featurized as that plan): a plan's
items are then ordered as the ranker orders its own strategies' lists, and only the cut to
the plan's levels is approximated. Measured (SciFact, 300 held-out queries, 372 static
plans, 2026-12-07), nDCG@10 of the restricted order minus the ranker re-run on each plan's
union: one order, +0.077 on average, up to +0.37 (structured + explore plans scored as if
lexical and dense had ranked them), 68 % of plans off by more than 0.02; per support,
+0.001 on average, at most 0.045. Without scores (no ranker), `d(best_rank(i))` as above.

`w_i` is the largest event weight among the item's feedback events (`acted_items`), so
clicks credit exactly the strategies that found the clicked item. An event on an entity
shown beside the results (a card, a related artist) counts on each result item it was
shown through with its weight shared, w / len(via) (`core.credit`): the plans that found
those items are credited, and one entity click is never worth more than one item click. `cost_ms` is measured
compute (`rl.cost.CostModel`). The empty plan retrieves nothing and costs nothing: its
reward is exactly 0.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.credit import event_shares
from core.events import EVENT_WEIGHTS, EventType
from core.records import Candidate, EventRecord, best_first, within
from rl.cost import CostModel
from rl.policy import ActionSpace

Discount = Literal["log2", "reciprocal", "none"]
Position = Literal["ranked", "retrieved"]
Counterfactual = Literal["clicks", "click_model"]
QueryLabels = Literal["max", "rate"]


class RewardConfig(BaseModel):
    """Weights of feedback events, and the price of compute in reward units."""

    model_config = ConfigDict(extra="forbid")
    event_weights: dict[EventType, float] = Field(default_factory=lambda: dict(EVENT_WEIGHTS),
                                                  description="what an event on an item is worth (default: the "
                                                  "one table, `core.events.EVENT_WEIGHTS`)")
    discount: Discount = Field("log2", description="rank discount: 1/log2(1+r), 1/r or none")
    position: Position = Field("ranked", description="the rank an acted item's gain is discounted by: its position "
                               "after the ranker orders the plan's union (given the ranker's scores; only the first "
                               "`page` count), or its best rank in the strategies' lists")
    page: int = Field(10, ge=1, description="ranked position: how many ranked items the user sees")
    price_per_10ms: float = Field(0.02, ge=0, description="reward given up per 10 ms of compute: a click at rank 1 "
                                  "is worth 1, so 0.02 means 10 ms must buy 2 % of a top click")
    counterfactual: Counterfactual = Field("clicks", description="how the retraining job values the plans a "
                                           "request did not serve: 'clicks', by the logged clicks (the request's "
                                           "own and its query's in other requests); 'click_model', by what a "
                                           "position-based click model fitted on the log expects each plan's page "
                                           "to earn (rl.click_model; needs the serving ranker)")
    query_labels: QueryLabels = Field("max", description="what a query's other requests say of an item ('clicks' "
                                      "counterfactual): 'max', the largest positive event weight any of them put on "
                                      "it; 'rate', the mean weight over those that showed it (a stray click on an "
                                      "item shown twenty times counts a twentieth)")
    budget_ms: float | None = Field(None, gt=0, description="instead of a price, a mean compute budget per request "
                                    "(ms): training finds the price (a Lagrange multiplier) at which the policy's "
                                    "mean cost meets it")

    def weight(self, event_type: str) -> float:
        """The weight of one event type (click, play, like, skip)."""
        return float(self.event_weights.get(event_type, EVENT_WEIGHTS[event_type]))

    def discount_of(self, rank: np.ndarray | float) -> np.ndarray:
        """d(rank) for 1-based ranks (vectorised)."""
        r = np.asarray(rank, dtype=np.float64)
        if self.discount == "log2":
            return 1.0 / np.log2(1.0 + r)
        if self.discount == "reciprocal":
            return 1.0 / r
        return np.ones_like(r)

    def price(self, cost_ms: np.ndarray | float) -> np.ndarray:
        """The reward cost of `cost_ms` milliseconds."""
        return self.price_per_10ms * np.asarray(cost_ms, dtype=np.float64) / 10.0


def acted_items(events: Sequence[EventRecord], cfg: RewardConfig,
                via: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """item_id -> the largest weight among its events. All events must share one request_id.
    An entity event counts on each of its via items (`via`: entity id -> the result items the
    request showed it through, `RequestRecord.entity_via`) with weight / len(via); without
    `via` it credits nothing."""
    if len({e.request_id for e in events}) > 1:
        raise ValueError("acted_items takes the events of one request; got several request_ids")
    out: dict[str, float] = {}
    for e in events:
        for item, share in event_shares(e, via or {}).items():
            w = cfg.weight(e.type) * share
            out[item] = max(out.get(item, w), w)
    return out


def union_under_plan(candidates: Sequence[Candidate], budgets: Mapping[str, int]) -> dict[str, int]:
    """item_id -> best rank, over the items the plan would have retrieved (see module doc)."""
    out: dict[str, int] = {}
    for c in candidates:
        ranks = [h.rank for s, h in c.hits.items() if 0 < budgets.get(s, 0) and h.rank <= budgets[s]]
        if ranks:
            out[c.item_id] = min(min(ranks), out.get(c.item_id, min(ranks)))
    return out


def returned_counts(candidates: Sequence[Candidate]) -> dict[str, int]:
    """strategy -> how many of the logged candidates it found (its list's logged length)."""
    out: dict[str, int] = {}
    for c in candidates:
        for s in c.hits:
            out[s] = out.get(s, 0) + 1
    return out


def ranked(cfg: RewardConfig, scores: Mapping[str, float] | None) -> bool:
    """Whether gains are discounted by ranked position (the config asks for it and scores are given)."""
    return cfg.position == "ranked" and scores is not None


def score_order(items: Sequence[str], scores: Mapping[str, float]) -> list[str]:
    """`items` best first by score (`core.records.best_first`); unscored last."""
    return [i for i, _ in best_first((i, scores.get(i, -np.inf)) for i in items)]


def plan_gain(candidates: Sequence[Candidate], acted: Mapping[str, float], budgets: Mapping[str, int],
              cfg: RewardConfig, scores: Mapping[str, float] | None = None) -> float:
    """gain(plan), as defined in the module docstring."""
    got = union_under_plan(candidates, budgets)
    if ranked(cfg, scores):
        got = {i: p for p, i in enumerate(score_order(list(got), scores), 1) if p <= cfg.page}
    return sum(float(w * cfg.discount_of(got[i])) for i, w in acted.items() if i in got)


def plan_reward(candidates: Sequence[Candidate], acted: Mapping[str, float], budgets: Mapping[str, int],
                cost: CostModel, cfg: RewardConfig, scores: Mapping[str, float] | None = None,
                depth: Mapping[str, int] | None = None) -> float:
    """gain(plan) - price * cost_ms(plan); 0.0 for the empty plan. The ranker's share of the
    cost uses the plan's real union size. `depth`: the depths the strategies were really
    called at, where deeper than the plan (a lookahead fetch, `engine.pipeline`): their
    compute is what is paid."""
    if not any(b > 0 for b in budgets.values()):
        return 0.0
    n = len(within(candidates, budgets))
    paid = {s: max(b, (depth or {}).get(s, 0)) if b > 0 else 0 for s, b in budgets.items()}
    return plan_gain(candidates, acted, budgets, cfg, scores) - float(cfg.price(cost.plan_ms(paid, n_candidates=n)))


def plan_grid(space: ActionSpace) -> np.ndarray:
    """All plans in the order of `reward_table(...).ravel()` (see `ActionSpace.grid`)."""
    return space.grid()


def _ranks(candidates: Sequence[Candidate], strategies: Sequence[str], keep: Mapping[str, float] | None
           ) -> dict[str, np.ndarray]:
    """item -> its best rank per strategy (inf = not found), for the items in `keep` (None: all)."""
    col = {s: k for k, s in enumerate(strategies)}
    best: dict[str, np.ndarray] = {}
    for c in candidates:
        if keep is not None and keep.get(c.item_id, 0.0) == 0.0:
            continue  # unacted items and zero weights contribute nothing
        ranks = best.setdefault(c.item_id, np.full(len(strategies), np.inf))
        for s, h in c.hits.items():
            if s in col:
                ranks[col[s]] = min(ranks[col[s]], h.rank)
    return best


def _ranked_block(ranks: Mapping[str, np.ndarray], order: Sequence[str], acted: Mapping[str, float],
                  cols: Sequence[int], lv: np.ndarray, cfg: RewardConfig, examination: float = 0.0) -> np.ndarray:
    """The gains of the plans over the strategies `cols` at levels `lv`, shape (len(lv),)*len(cols),
    with the items in `order` (`_block`)."""
    R = np.stack([ranks[i][list(cols)] for i in order]) if order else np.zeros((0, len(cols)))
    return _block(R, np.array([acted.get(i, 0.0) for i in order], dtype=np.float64), lv, cfg, examination)


def _block(R: np.ndarray, w: np.ndarray, lv: np.ndarray, cfg: RewardConfig, examination: float = 0.0) -> np.ndarray:
    """The gains of the plans over k strategies at levels `lv`, shape (len(lv),)*k, for items in
    ranked order with ranks `R` (m, k; inf = not found) and acted weights `w` (m,): which plans
    retrieve each item ((m, L, ..., L) booleans, one strategy axis at a time); an item's position
    under a plan is the number of items up to it that the plan retrieves (a cumulative sum).
    `examination` (eta) multiplies the discount by position**-eta (`rl.click_model`: expected
    clicks, not logged ones).

    Once the smallest plan (every strategy at lv[0] > 0) has retrieved a page of items, every
    plan has (each retrieves a superset of it), so no later item is on any plan's page: the walk
    stops there, as it does after the last acted item."""
    k, L = R.shape[1], len(lv)
    table = np.zeros((L,) * k)
    at = np.flatnonzero(w != 0.0)
    if not len(at):
        return table
    m = at[-1] + 1
    if lv[0] > 0:
        m = min(m, int(np.searchsorted(np.cumsum((R[:m] <= lv[0]).any(axis=1)), cfg.page)) + 1)
    R, w = R[:m], w[:m]
    miss = R[:, :, None] > lv[None, None, :]  # (m, k, L): not retrieved by strategy j at level l
    out = miss[:, 0, :]
    for j in range(1, k):
        out = out[..., None] & miss[:, j, :].reshape((len(R),) + (1,) * j + (L,))
    inside = ~out  # (m, L, ..., L)
    pos = np.cumsum(inside, axis=0, dtype=np.int32)  # each item's position under each plan (if retrieved)
    ranks_1 = np.arange(1, cfg.page + 1)
    disc = np.zeros(cfg.page + 2)
    disc[1:-1] = cfg.discount_of(ranks_1) * ranks_1 ** -float(examination)  # 0 beyond the page
    hit = np.flatnonzero(w != 0.0)
    gain = disc[np.minimum(pos[hit], cfg.page + 1)] * w[hit].reshape((len(hit),) + (1,) * k)
    return table + np.where(inside[hit], gain, 0.0).sum(axis=0)


@dataclass
class SupportOrders:
    """The ranker's scores per support (set of strategies) of one logged request, for
    `gain_table`'s `by_support`: `served` featurizes each support at the depths the request
    served its strategies at (a strategy it did not serve: as deep as it was fetched), so a
    plan within those depths, the served plan first, is valued in the order its user saw;
    `deep` (where a lookahead or shadow fetch went deeper than served) featurizes it at the
    fetched depth, for the plans beyond. Measured (music-demo, 600 lookahead requests): the
    served plan scored at the fetched depth was valued 0.09 below what its users did."""

    served: Mapping[frozenset[str], Mapping[str, float]]
    deep: Mapping[frozenset[str], Mapping[str, float]] = field(default_factory=dict)
    depth: Mapping[str, int] = field(default_factory=dict)  # strategy -> its served depth (where `deep` applies)


def _ranked_gain_table(candidates: Sequence[Candidate], acted: Mapping[str, float], scores: Mapping[str, float],
                       space: ActionSpace, cfg: RewardConfig,
                       by_support: Mapping[frozenset[str], Mapping[str, float]] | SupportOrders | None = None,
                       examination: float = 0.0) -> np.ndarray:
    """gain_table with ranked positions. One order for every plan (`scores`), or, with
    `by_support`, each plan's items in the order the ranker gives the plan's own strategies
    (its support, at the fetched depth; with `SupportOrders`, at the served depth for plans
    within it), `scores` for a support it lacks."""
    orders = by_support if isinstance(by_support, SupportOrders) else SupportOrders(by_support or {})
    n, lv = len(space.strategies), np.asarray(space.levels, dtype=np.float64)
    ranks = _ranks(candidates, space.strategies, None)
    if by_support is None:
        return _ranked_block(ranks, score_order(list(ranks), scores), acted, range(n), lv, cfg, examination)
    if lv[0] != 0:
        raise ValueError("per-support credit needs level 0 (strategy not called) first")
    table = np.zeros((len(lv),) * n)
    ids = list(ranks)
    if not ids:
        return table
    RM = np.stack([ranks[i] for i in ids])  # (items, n)
    W = np.array([acted.get(i, 0.0) for i in ids], dtype=np.float64)
    tie = np.argsort(np.argsort(np.array(ids, dtype=object)))  # ties by item id (`core.records.best_first`)
    present = set(np.flatnonzero(np.isfinite(RM).any(axis=0)))

    def block(idx: np.ndarray, cols: tuple[int, ...], support_scores: Mapping[str, float]) -> np.ndarray:
        sc = np.array([support_scores.get(ids[i], -np.inf) for i in idx], dtype=np.float64)
        o = idx[np.lexsort((tie[idx], -sc))]
        return _block(RM[o][:, list(cols)], W[o], lv[1:], cfg, examination)

    for size in range(1, n + 1):
        for cols in itertools.combinations(range(n), size):
            idx = np.flatnonzero(np.isfinite(RM[:, list(cols)]).any(axis=1))
            if not (W[idx] != 0.0).any():
                continue  # no acted item under any plan of this support: its block stays 0
            support = frozenset(space.strategies[k] for k in cols if k in present)  # what the plan can find
            got = block(idx, cols, orders.served.get(support, scores))
            if support in orders.deep:  # plans beyond the served depths: the order at the fetched depth
                deep = block(idx, cols, orders.deep[support])
                inside = np.ones(got.shape, dtype=bool)
                for j, k in enumerate(cols):
                    ok = lv[1:] <= orders.depth.get(space.strategies[k], np.inf)
                    inside &= ok.reshape((1,) * j + (len(ok),) + (1,) * (len(cols) - j - 1))
                got = np.where(inside, got, deep)
            at = tuple(slice(1, None) if k in cols else 0 for k in range(n))
            table[at] = got
    return table


def gain_table(candidates: Sequence[Candidate], acted: Mapping[str, float], space: ActionSpace,
               cfg: RewardConfig, chunk: int = 64, scores: Mapping[str, float] | None = None,
               by_support: Mapping[frozenset[str], Mapping[str, float]] | SupportOrders | None = None,
               examination: float = 0.0) -> np.ndarray:
    """The gain of every plan, shape (L,)*n: `table[i_1..i_n]` = gain of {s_k: levels[i_k]}.
    With `scores` (and the ranked position), `_ranked_gain_table` (per support with `by_support`).

    Includes the empty plan (all indices 0, gain 0). Vectorised: since d is decreasing,
    an item's gain under a plan is the max over strategies of its per-strategy gain
    G[i, s, l] = w_i * d(rank_s(i)) if rank_s(i) <= levels[l] else 0; the (items, L, ..., L)
    array of maxima is built by broadcasting one strategy axis at a time and summed over
    items (in chunks of `chunk` items to bound memory). Only exact within the fetched
    depths (`known_mask`).
    """
    if ranked(cfg, scores):
        return _ranked_gain_table(candidates, acted, scores, space, cfg, by_support, examination)
    strategies, lv = space.strategies, np.asarray(space.levels, dtype=np.float64)
    n, L = len(strategies), len(lv)
    best = _ranks(candidates, strategies, acted)  # item -> per-strategy rank (inf = not found)
    items = list(best)
    table = np.zeros((L,) * n)
    if items:
        R = np.stack([best[i] for i in items])  # (m, n)
        w = np.array([acted[i] for i in items], dtype=np.float64)
        per = np.where(np.isfinite(R), w[:, None] * cfg.discount_of(np.where(np.isfinite(R), R, 1.0)), 0.0)
        G = np.where(R[:, :, None] <= lv[None, None, :], per[:, :, None], 0.0)  # (m, n, L)
        # Negative weights (e.g. a penalised skip) break "max of gains"; handle them exactly.
        neg = w < 0
        for sel, sign in ((~neg, 1.0), (neg, -1.0)):
            for a in range(0, int(sel.sum()), chunk):
                g = sign * G[sel][a:a + chunk]  # positive gains whose max is the item's |gain|
                acc = g[:, 0, :]
                for k in range(1, n):
                    acc = np.maximum(acc[..., None], g[:, k, :].reshape((len(g),) + (1,) * k + (L,)))
                table += sign * acc.sum(axis=0)
    return table


def reward_table(gains: np.ndarray, cost: CostModel, space: ActionSpace, cfg: RewardConfig,
                 returned: Mapping[str, int] | None = None) -> np.ndarray:
    """gain table minus the price of every plan's cost (`CostModel.table`)."""
    return gains - cfg.price(cost.table(space, returned))


def known_mask(depth: Mapping[str, int], returned: Mapping[str, int], space: ActionSpace) -> np.ndarray:
    """Which plans' gains a request knows exactly, shape (L,)*n: every strategy's level is
    within its fetched depth, or the strategy returned fewer than its depth (its list is
    complete, so a deeper budget finds nothing more)."""
    lv = np.asarray(space.levels)
    n, L = len(space.strategies), len(lv)
    out = np.ones((L,) * n, dtype=bool)
    for k, s in enumerate(space.strategies):
        d = depth.get(s, 0)
        ok = (lv <= d) | (returned.get(s, 0) < d)
        out = out & ok.reshape((1,) * k + (L,) + (1,) * (n - k - 1))
    return out
