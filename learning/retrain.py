"""The retrain path, free of Ray: feedback logs -> new bandit and ranker versions -> gate -> promotion.

`deployments.jobs` runs it inside a Ray Job against the live service (exporting the
feedback actors' logs first and promoting through Serve's `user_config`); tests and
tools can run it on any exported logs with any `Promoter`.

1. bandit: every logged request becomes experience (`rl.experience`: its served plan's
   sub-plans exactly, a shadow request's every plan, a reward model for the rest); plans
   are priced by the service's own measured latencies (`rl.cost.CostModel.from_records`)
   at the configured price or budget (`PolicyArgs.reward`); PPO trains on the older
   requests (`rl.train`); the new policy and the serving one are estimated with IPS, SNIPS,
   DR, the shadow estimate and the model-free `lower` bound (the one that decides) on the
   newest `HOLDOUT` share of requests, out of sample (`rl.promotion.gate`); promoted only if
   not worse. The estimate is written next to
   the artifact (`promotion.json`), and the online value the serving version reached
   (mean observed reward of the requests it served) is added to its own record;
2. ranker: XGBoost on the logged clicks with position-bias correction (unbiased
   LambdaMART, `ranking.train.train_from_clicks`), gated against the serving ranker on
   held-out logged requests (`learning.ranker_gate`; `tolerance` in nDCG@10 there);
3. every promotion goes through the `Promoter` and is appended to the kind's history
   (`learning.registry`); `rollback` promotes the version that served before the current one.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.model import Item
from core.paths import ModelKind, StatePaths
from core.records import EventRecord, RequestRecord
from learning.registry import previous_of, record_promotion
from rl.click_model import ClickModelFit, fit_click_model
from rl.cost import CostModel
from rl.features import DIM, FEATURE_NAMES
from rl.policy import LEVELS
from rl.promotion import HOLDOUT
from rl.reward import RewardConfig, SupportOrders
from rl.serving import PolicyArgs, build_policy

if TYPE_CHECKING:
    from ranking.model import Ranker
    from rl.train import PPOConfig

MIN_REQUESTS = 40
MAX_TRAIN_REQUESTS = 20_000


class Promoter(Protocol):
    """Where models serve: what version of a kind serves now, and how to serve another."""

    def current(self, kind: ModelKind) -> str:
        """The version serving now ('fixed' for the cold-start policy, 'fallback' for the RRF ranker)."""
        ...

    def promote(self, kind: ModelKind, version: str) -> None:
        """Serve `version` from now on (returns once the change is requested)."""
        ...


#: One request's per-support scores, compact (arrays, not a dict of boxed floats per support):
#: (the fetch's item ids, [(set of strategies, deep, rows of the ids it fetched, the ranker's scores)]);
#: `deep`: featurized at the fetched depth rather than the served one (`rl.reward.SupportOrders`)
SupportScores = tuple[list[str], list[tuple[frozenset[str], bool, np.ndarray, np.ndarray]]]
#: (ranker version, request id, shadow completion landed, candidates) -> that request's SupportScores
SupportCache = MutableMapping[tuple[str, str, bool, int], SupportScores]


def by_request(events: Sequence[EventRecord]) -> dict[str, list[EventRecord]]:
    out: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        out[e.request_id].append(e)
    return out


def retrain_bandit(paths: StatePaths, policy_args: PolicyArgs, strategies: list[str], requests: list[RequestRecord],
                   events: Mapping[str, list[EventRecord]], tolerance: float, promoter: Promoter,
                   ppo: PPOConfig | None = None, version: str | None = None, cost: CostModel | None = None,
                   holdout: float = HOLDOUT, ranker: Ranker | None = None,
                   catalog: Mapping[str, Item] | None = None,
                   support_cache: SupportCache | None = None) -> dict[str, Any]:
    """Train a bandit on the older logged requests, gate it against the serving policy on the
    newest `holdout` share, write its promotion record, and promote it if the gate passes.
    `cost` defaults to the one measured from these requests' own latencies. With `ranker` and
    `catalog`, plans are credited by where that ranker puts the acted items (`logged_scores`,
    `support_scorer`; a caller that retrains repeatedly on growing logs passes one
    `support_cache` to all its retrains)."""
    from rl.experience import experience
    from rl.policy import ActionSpace
    from rl.promotion import gate, reward_model
    from rl.train import train_bandit

    cfg = policy_args.reward
    requests = sorted((r for r in requests if len(r.features) == DIM), key=lambda r: r.ts)[-MAX_TRAIN_REQUESTS:]
    if len(requests) < MIN_REQUESTS:
        raise ValueError(f"too few logged requests to train the bandit: {len(requests)} < {MIN_REQUESTS} "
                         "(send more traffic)")
    cost = cost or CostModel.from_records(requests)
    space = ActionSpace(strategies)
    n_hold = int(len(requests) * holdout)
    scores = rescore = None
    if ranker is not None and catalog is not None:
        scores = logged_scores(requests, ranker, catalog)
        rescore = support_scorer(ranker, catalog, support_cache)
    train = requests[:len(requests) - n_hold]
    clicks = click_model(train, events, cfg, scores, rescore)
    train_exp = experience(train, events, space, cfg, cost, DIM, scores=scores, rescore=rescore, clicks=clicks)
    held = experience(requests[len(requests) - n_hold:], events, space, cfg, cost, DIM, model=train_exp.model,
                      scores=scores, bounds=True, rescore=rescore, clicks=clicks) if n_hold >= 2 else train_exp
    kind_dir = paths.bandit_models
    version = version or "bandit-" + time.strftime("%Y%m%d-%H%M%S")
    art = train_bandit(train_exp.contexts, strategies, kind_dir, version, reward=cfg, ppo=ppo,
                       feature_names=FEATURE_NAMES, cost=cost)
    current = promoter.current("bandit") or "fixed"
    serving = build_policy(policy_args, strategies, current, kind_dir)
    candidate = build_policy(policy_args, strategies, version, kind_dir)
    q = reward_model([d.model for d in train_exp.decisions if d.model is not None])
    decision = gate(candidate, serving, held.decisions, space, q, tolerance=tolerance)
    decision["held_out"] = {"requests": len(held.decisions), "in_sample": held is train_exp}
    served = [d.reward for d in held.decisions]
    online = {"version": serving.version, "requests": len(served),
              "mean_reward": float(np.mean(served)) if served else None, "measured_at": time.time()}
    record = {"version": version, "trained_on_requests": len(train_exp.contexts),
              "full_information_contexts": train_exp.full_information,
              "known_plan_share": round(train_exp.known_share, 4), "price_per_10ms": art.meta["price_per_10ms"],
              "budget_ms": cfg.budget_ms, "serving_version": current,
              "click_model": clicks.model_dump() if clicks is not None else None,
              "ope": decision, "serving_online_value": online, "promoted": decision["promote"]}
    (art.path / "promotion.json").write_text(json.dumps(record, indent=1))
    prev = kind_dir / current / "promotion.json"
    if prev.exists():  # the value the serving version actually reached online, next to its estimate
        row = json.loads(prev.read_text())
        row.setdefault("online", []).append(online)
        prev.write_text(json.dumps(row, indent=1))
    if decision["promote"]:
        promoter.promote("bandit", version)
        record_promotion(paths, "bandit", version, current, "retrain")
    return record


def logged_scores(requests: Sequence[RequestRecord], ranker: Ranker, catalog: Mapping[str, Item],
                  batch: int = 256) -> dict[str, dict[str, float]]:
    """request id -> item -> `ranker`'s score of each candidate the request served, featurized
    as the plan it served (`RequestRecord.served`: what the ranker ranked for the user, not the
    deeper lists a shadow completion or a lookahead fetch logged beside it), so the served
    plan's reward is valued in the order its user saw (one predict call per `batch` requests)."""
    from ranking.model import rank_many

    out: dict[str, dict[str, float]] = {}
    for a in range(0, len(requests), batch):
        chunk = [(r, r.served()) for r in requests[a:a + batch]]
        chunk = [(r, served) for r, served in chunk if served]
        for (r, _), pairs in zip(chunk, rank_many(ranker, [(r.query, served) for r, served in chunk], catalog)):
            out[r.request_id] = dict(pairs)
    return out


def click_model(requests: Sequence[RequestRecord], events: Mapping[str, Sequence[EventRecord]], cfg: RewardConfig,
                scores: Mapping[str, Mapping[str, float]] | None,
                rescore: Callable[[RequestRecord], SupportOrders] | None) -> ClickModelFit | None:
    """The click model `cfg.counterfactual` asks for, fitted on `requests` (`rl.click_model`):
    None when it asks for logged clicks, without the ranker's scores, or when no shown item was
    acted on yet (the logged clicks value the plans until then)."""
    if cfg.counterfactual != "click_model" or scores is None or rescore is None:
        return None
    orders = {r.request_id: rescore(r) for r in requests if r.request_id in scores}
    try:
        return fit_click_model(requests, events, cfg, orders)
    except ValueError:
        return None


def support_scorer(ranker: Ranker, catalog: Mapping[str, Item], cache: SupportCache | None = None
                   ) -> Callable[[RequestRecord], SupportOrders]:
    """A logged request -> for every non-empty set of the strategies that returned candidates,
    `ranker`'s scores of what those strategies fetched, featurized as a plan of exactly those
    strategies (`ranking.features.PlanFeaturizer`; one predict call per request), at the depths
    the request served them at, and, where a shadow or lookahead fetch went deeper, also at the
    fetched depth (`rl.reward.SupportOrders`). `rl.experience` orders each plan's items by its
    own strategies' scores with it: the ranker's features depend on which lists found an item,
    so the whole fetch's order, restricted to a sub-plan, overrated plans without lexical and
    dense by up to 0.37 nDCG@10 on SciFact (`rl.reward`).

    Cost: up to 63 featurizations per request, twice for a deeper fetch (about 9 ms at 5.6
    strategies and 133 candidates, music-demo, 2026-12-07). `cache`, keyed by the ranker's
    version and the request's record (its id, whether its shadow completion has landed, its
    candidate count), keeps the scores across retrains on growing logs: the bench's drift
    stream, retraining every 200 of 1,200 requests, would otherwise rescore 3,000 requests for
    1,000 distinct ones."""
    from ranking.features import PlanFeaturizer

    def score(r: RequestRecord) -> SupportOrders:
        key = (ranker.version, r.request_id, bool(r.fetched), len(r.candidates))
        got = cache.get(key) if cache is not None else None
        if got is None:
            got = _score(r)
            if cache is not None:
                cache[key] = got
        ids, blocks = got
        served: dict[frozenset[str], dict[str, float]] = {}
        deep: dict[frozenset[str], dict[str, float]] = {}
        for S, is_deep, rows, x in blocks:
            (deep if is_deep else served)[S] = dict(zip([ids[i] for i in rows], x.tolist()))
        return SupportOrders(served, deep, {s: b for s, b in r.plan.budgets.items() if b > 0})

    def _score(r: RequestRecord) -> SupportScores:
        present = sorted({s for c in r.candidates for s in c.hits})
        if not present:
            return [], []
        feats = PlanFeaturizer(r.query, r.candidates, catalog)
        top = max(LEVELS)
        at = {s: b if (b := r.plan.budgets.get(s, 0)) > 0 else top for s in present}  # as served
        deeper = {s for s in present if at[s] < r.depth.get(s, 0)}  # fetched beyond what was served
        supports = [frozenset(S) for k in range(1, len(present) + 1) for S in combinations(present, k)]
        jobs = [(S, False, {s: at[s] for s in S}) for S in supports]
        jobs += [(S, True, {s: top for s in S}) for S in supports if S & deeper]
        plans = [feats.rows(budgets) for _, _, budgets in jobs]
        scores = ranker.predict(np.concatenate([X for _, X in plans])).astype(np.float32)
        bounds = np.cumsum([0] + [len(rows) for rows, _ in plans])
        return feats.ids, [(S, is_deep, rows.astype(np.int32), scores[a:b])
                           for (S, is_deep, _), (rows, _), a, b in zip(jobs, plans, bounds[:-1], bounds[1:])]
    return score


def retrain_ranker(paths: StatePaths, catalog: Mapping[str, Item], requests: list[RequestRecord],
                   events: list[EventRecord], promoter: Promoter, tolerance: float = 0.0) -> dict[str, Any]:
    """Train a ranker on the logged clicks and promote it if it passes the gate (learning.ranker_gate)."""
    from learning.ranker_gate import promote_ranker
    from ranking.train import train_from_clicks

    out = train_from_clicks(requests, events, catalog, models_root=paths.ranker_models)
    metrics = json.loads((out / "manifest.json").read_text()).get("metrics", {})
    return {**promote_ranker(paths, promoter, out.name, requests, events, catalog, "retrain", tolerance),
            "metrics": metrics}


def retrain(paths: StatePaths, what: str, requests: list[RequestRecord], events: list[EventRecord],
            policy_args: PolicyArgs, strategies: list[str], catalog: Mapping[str, Item], promoter: Promoter,
            tolerance: float | None = None, ppo: PPOConfig | None = None) -> dict[str, Any]:
    """Retrain the bandit, the ranker or both (`what`: bandit | ranker | all) on these logs
    (`ppo`: the bandit's training settings, default PPOConfig())."""
    requests = sorted(requests, key=lambda r: r.ts)
    result: dict[str, Any] = {"requests": len(requests), "events": len(events)}
    if what in ("bandit", "all"):
        ranker, result["bandit_credit"] = _serving_ranker(paths, promoter) if catalog else (
            None, "retrieval rank (no catalogue to featurize the logged candidates)")
        result["bandit"] = retrain_bandit(paths, policy_args, strategies, requests, by_request(events),
                                          0.02 if tolerance is None else tolerance, promoter, ppo=ppo,
                                          ranker=ranker, catalog=catalog)
    if what in ("ranker", "all"):
        result["ranker"] = retrain_ranker(paths, catalog, requests, events, promoter, tolerance or 0.0)
    return result


def _serving_ranker(paths: StatePaths, promoter: Promoter) -> tuple[Ranker | None, str]:
    """The serving ranker, to credit the bandit's plans by ranked position, and how plans are
    credited. A ranker that cannot be loaded (its artifact gone or stale, the service not
    answering) must not stop the bandit's retrain: plans are then credited by retrieval rank,
    and the result says why."""
    from learning.ranker_gate import load_ranker
    from ranking.model import latest_version

    try:
        version = promoter.current("ranker")
        if version in ("", "latest"):
            version = latest_version(paths.ranker_models) or "fallback"
        return load_ranker(paths.ranker_models, version), f"ranked by the serving ranker {version}"
    except Exception as exc:  # any failure to find the ranker falls back to the retrieval-rank credit
        return None, f"retrieval rank (the serving ranker could not be loaded: {exc})"


def rollback(paths: StatePaths, kind: ModelKind, promoter: Promoter) -> dict[str, Any]:
    """Serve the version that served before the current one (from the kind's history)."""
    current = promoter.current(kind)
    previous = previous_of(paths, kind, current)
    promoter.promote(kind, previous)
    record_promotion(paths, kind, previous, current, "rollback")
    return {"what": kind, "from": current, "to": previous}


def read_logs(directory: Path) -> tuple[list[RequestRecord], list[EventRecord]]:
    """Exported feedback logs (`engine.feedback_store.read_export`), requests in time order."""
    from engine.feedback_store import read_export

    requests, events = read_export(directory)
    requests.sort(key=lambda r: r.ts)
    return requests, events
