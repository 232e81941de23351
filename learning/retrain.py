"""The retrain path, free of Ray: feedback logs -> new bandit and ranker versions -> gate -> promotion.

`deployments.jobs` runs it inside a Ray Job against the live service (exporting the
feedback actors' logs first and promoting through Serve's `user_config`); tests and
tools can run it on any exported logs with any `Promoter`.

1. bandit: the shadow requests (every strategy at its top budget, with their events)
   become replay contexts; PPO trains on them (`rl.train`); the new policy and the
   serving one are estimated with IPS, SNIPS and DR on the logged requests
   (`rl.promotion.gate`); promoted only if not worse. The estimate is written next to
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.model import Item
from core.paths import ModelKind, StatePaths
from core.records import EventRecord, RequestRecord
from learning.registry import previous_of, record_promotion
from rl.features import DIM, FEATURE_NAMES
from rl.reward import RewardConfig, acted_items, plan_reward, reward_table
from rl.serving import PolicyArgs, build_policy

MIN_SHADOW = 20
MAX_OPE_LOGS = 20_000


class Promoter(Protocol):
    """Where models serve: what version of a kind serves now, and how to serve another."""

    def current(self, kind: ModelKind) -> str:
        """The version serving now ('fixed' for the cold-start policy, 'fallback' for the RRF ranker)."""
        ...

    def promote(self, kind: ModelKind, version: str) -> None:
        """Serve `version` from now on (returns once the change is requested)."""
        ...


def by_request(events: Sequence[EventRecord]) -> dict[str, list[EventRecord]]:
    out: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        out[e.request_id].append(e)
    return out


def _observed(requests: list[RequestRecord], events: Mapping[str, list[EventRecord]], cfg: RewardConfig,
              tables: dict[str, np.ndarray]) -> list[tuple[RequestRecord, Any]]:
    from rl.promotion import LoggedDecision

    out = []
    for r in requests[-MAX_OPE_LOGS:]:
        if len(r.features) != DIM or not any(r.plan.budgets.values()):
            continue
        acted = acted_items(events.get(r.request_id, []), cfg)
        reward = plan_reward(r.candidates, acted, r.plan.budgets, r.latency_ms, cfg)
        out.append((r, LoggedDecision(np.asarray(r.features, dtype=np.float32), dict(r.plan.budgets),
                                      r.plan.propensity, reward, tuple(r.plan.budgets), r.plan.shadow,
                                      tables.get(r.request_id))))
    return out


def retrain_bandit(paths: StatePaths, policy_args: PolicyArgs, strategies: list[str], requests: list[RequestRecord],
                   events: Mapping[str, list[EventRecord]], tolerance: float, promoter: Promoter) -> dict[str, Any]:
    """Train a bandit on the shadow requests, gate it against the serving policy out of
    sample, write its promotion record, and promote it if the gate passes."""
    from rl.env import LoggedContext
    from rl.policy import ActionSpace
    from rl.promotion import gate, holdout_split, reward_model
    from rl.train import train_bandit

    cfg = RewardConfig()
    requests = sorted(requests, key=lambda r: r.ts)
    shadow = [LoggedContext.from_record(r, events.get(r.request_id, []), r.latency_ms, cfg)
              for r in requests if r.plan.shadow and len(r.features) == DIM]
    if len(shadow) < MIN_SHADOW:
        raise ValueError(f"too few shadow requests to train the bandit: {len(shadow)} < {MIN_SHADOW} "
                         f"(of {len(requests)} logged requests; raise policy.shadow_share or send more traffic)")
    # the newest shadow requests, and every request since the first of them, judge the candidate out of sample
    n_hold = holdout_split(len(shadow), MIN_SHADOW)
    held = {c.request_id for c in shadow[len(shadow) - n_hold:]}
    first = next((i for i, r in enumerate(requests) if r.request_id in held), 0)
    train = shadow[:len(shadow) - n_hold]
    kind_dir = paths.bandit_models
    version = "bandit-" + time.strftime("%Y%m%d-%H%M%S")
    art = train_bandit(train, strategies, kind_dir, version, reward=cfg, feature_names=FEATURE_NAMES)
    current = promoter.current("bandit") or "fixed"
    serving = build_policy(policy_args, strategies, current, kind_dir)
    candidate = build_policy(policy_args, strategies, version, kind_dir)
    space = ActionSpace(strategies)
    tables = {c.request_id: reward_table(c.candidates, c.acted, c.latency_ms, space, cfg) for c in shadow}
    logs = _observed(requests[first:], events, cfg, tables)
    q = reward_model([tables[c.request_id] for c in train])
    decision = gate(candidate, serving, [d for _, d in logs], space, q, tolerance=tolerance)
    decision["held_out"] = {"shadow_contexts": n_hold, "logs": len(logs), "in_sample": n_hold == 0}
    served = [d.reward for r, d in logs if r.plan.policy_version == serving.version]
    online = {"version": serving.version, "requests": len(served),
              "mean_reward": float(np.mean(served)) if served else None, "measured_at": time.time()}
    record = {"version": version, "trained_on_shadow_requests": len(train), "serving_version": current,
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
            tolerance: float | None = None) -> dict[str, Any]:
    """Retrain the bandit, the ranker or both (`what`: bandit | ranker | all) on these logs."""
    requests = sorted(requests, key=lambda r: r.ts)
    result: dict[str, Any] = {"requests": len(requests), "events": len(events)}
    if what in ("bandit", "all"):
        result["bandit"] = retrain_bandit(paths, policy_args, strategies, requests, by_request(events),
                                          0.02 if tolerance is None else tolerance, promoter)
    if what in ("ranker", "all"):
        result["ranker"] = retrain_ranker(paths, catalog, requests, events, promoter, tolerance or 0.0)
    return result


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
