"""The retrain path: feedback logs -> new bandit and ranker versions -> OPE gate -> hot swap.

Runs inside a Ray Job (`ltrr.jobs`) connected to the cluster that serves ltrr:
1. ask every feedback actor to export its logs (a consistent cut, Parquet);
2. bandit: the shadow requests (every strategy at its top budget, with their events)
   become replay contexts; PPO trains on them (`rl.train`); the new policy and the
   serving one are estimated with IPS, SNIPS and DR on the logged requests
   (`rl.promotion.gate`); promoted only if not worse. The estimate is written next to
   the artifact (`promotion.json`), and the online value the serving version reached
   (mean observed reward of the requests it served) is added to its own record;
3. ranker: XGBoost on the logged clicks with position-bias correction (unbiased
   LambdaMART, `ranking.train.train_from_clicks`);
4. promotion changes only the deployment's `user_config` (`ltrr.cluster.redeploy_with`):
   Serve calls `reconfigure()` on the live replica, no restart, no failed request.

Every promotion is appended to `<state>/models/<kind>/history.jsonl`; `rollback`
promotes the version that served before the current one.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ltrr import cluster
from ltrr.records import EventRecord, RequestRecord
from rl.features import DIM, FEATURE_NAMES
from rl.reward import RewardConfig, acted_items, plan_reward, reward_table

MIN_SHADOW = 20
MAX_OPE_LOGS = 20_000


def _config(state: Path) -> tuple[Path, dict, dict]:
    path = state / "serve_config.yaml"
    if not path.is_file():
        raise cluster.ClusterError(f"{path} does not exist: is ltrr up (with this --state)?")
    config = yaml.safe_load(path.read_text())
    return path, config, config["applications"][0]


def _base_url(config: dict) -> str:
    return f"http://127.0.0.1:{config['http_options']['port']}"


def export_logs(state: Path, n_shards: int) -> Path:
    """Ask the running feedback actors (Ray must be connected) to export; return the directory."""
    import ray

    from deployments.feedback import lookup_shards

    out = (state / "exports" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    ray.get([s.export.remote(str(out)) for s in lookup_shards(n_shards)])
    return out


def _history(kind_dir: Path) -> list[dict]:
    f = kind_dir / "history.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def _record_promotion(kind_dir: Path, version: str, previous: str, reason: str) -> None:
    kind_dir.mkdir(parents=True, exist_ok=True)
    with (kind_dir / "history.jsonl").open("a") as f:
        f.write(json.dumps({"version": version, "previous": previous, "ts": time.time(), "reason": reason}) + "\n")


def serving_version(config_path: Path, deployment: str) -> str:
    return str(cluster.deployment_entry(config_path, deployment).get("user_config", {}).get("version", ""))


def serving_policy(app: dict, version: str, strategies: list[str]) -> Any:
    """The serving policy as the orchestrator builds it (`deployments.policy_loader`)."""
    from deployments.config import AppArgs
    from deployments.policy_loader import build_policy

    args = AppArgs.model_validate(app["args"])
    return build_policy(args, strategies, version)


def _observed(requests: list[RequestRecord], events: dict[str, list[EventRecord]], cfg: RewardConfig,
              tables: dict[str, np.ndarray]):
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


def retrain_bandit(state: Path, config_path: Path, app: dict, requests: list[RequestRecord],
                   events: dict[str, list[EventRecord]], tolerance: float) -> dict[str, Any]:
    from rl.env import LoggedContext
    from rl.policy import ActionSpace
    from rl.promotion import gate, holdout_split, reward_model
    from rl.train import train_bandit

    cfg = RewardConfig()
    from deployments.config import AppArgs

    strategies = list(AppArgs.model_validate(app["args"]).strategies)
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
    kind_dir = state / "models" / "bandit"
    version = "bandit-" + time.strftime("%Y%m%d-%H%M%S")
    art = train_bandit(train, strategies, kind_dir, version, reward=cfg, feature_names=FEATURE_NAMES)
    current = serving_version(config_path, "orchestrator") or "fixed"
    serving = serving_policy(app, current, strategies)
    candidate = serving_policy(app, version, strategies)
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
        cluster.redeploy_with(config_path, "orchestrator", {"user_config": {"version": version}})
        _record_promotion(kind_dir, version, current, "retrain")
    return record


def retrain_ranker(state: Path, config_path: Path, config: dict, requests: list[RequestRecord],
                   events: list[EventRecord]) -> dict[str, Any]:
    import httpx

    from ltrr.index_store import IndexHandle
    from ranking.train import train_from_clicks

    kind_dir = state / "models" / "ranker"
    index = IndexHandle.open(Path(config["applications"][0]["args"]["index_dir"]))
    out = train_from_clicks(requests, events, index.catalog(), models_root=kind_dir)
    metrics = json.loads((out / "manifest.json").read_text()).get("metrics", {})
    current = httpx.get(f"{_base_url(config)}/healthz", timeout=30).json()["ranker"]  # concrete, not "latest"
    current = "fallback" if current == "fallback-rrf" else current
    cluster.redeploy_with(config_path, "ranker", {"user_config": {"version": out.name}})
    _record_promotion(kind_dir, out.name, current, "retrain")
    return {"version": out.name, "previous": current, "metrics": metrics, "promoted": True}


def run(state: Path, what: str, tolerance: float | None = None) -> dict[str, Any]:
    """Export, train, gate and promote; wait until the service serves what was promoted."""
    from ltrr.feedback_store import read_export

    state = state.resolve()
    config_path, config, app = _config(state)
    logs = export_logs(state, int(app["args"].get("feedback_shards", 2)))
    requests, events = read_export(logs)
    requests.sort(key=lambda r: r.ts)
    by_request: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        by_request[e.request_id].append(e)
    result: dict[str, Any] = {"logs": str(logs), "requests": len(requests), "events": len(events)}
    if what in ("bandit", "all"):
        result["bandit"] = retrain_bandit(state, config_path, app, requests, by_request,
                                          0.02 if tolerance is None else tolerance)
    if what in ("ranker", "all"):
        result["ranker"] = retrain_ranker(state, config_path, config, requests, events)
    result["health"] = _wait(config_path, config)
    return result


def _wait(config_path: Path, config: dict) -> dict:
    return cluster.wait_healthy(_base_url(config), 600, expect_ranker=_concrete(serving_version(config_path, "ranker")),
                                expect_policy=_concrete(serving_version(config_path, "orchestrator")))


def _concrete(version: str) -> str | None:
    return None if version in ("", "latest", "fixed") else version


def rollback(state: Path, what: str) -> dict[str, Any]:
    """Serve the version that served before the current one (from history.jsonl)."""
    state = state.resolve()
    config_path, config, _ = _config(state)
    kind_dir = state / "models" / what
    deployment = "orchestrator" if what == "bandit" else "ranker"
    current = serving_version(config_path, deployment)
    hist = [h for h in _history(kind_dir) if h["version"] == current]
    if not hist:
        raise ValueError(f"no promotion of the serving {what} version {current!r} in {kind_dir}/history.jsonl: "
                         "nothing to roll back to")
    previous = hist[-1]["previous"] or ("fixed" if what == "bandit" else "latest")
    cluster.redeploy_with(config_path, deployment, {"user_config": {"version": previous}})
    _record_promotion(kind_dir, previous, current, "rollback")
    return {"what": what, "from": current, "to": previous, "health": _wait(config_path, config)}
