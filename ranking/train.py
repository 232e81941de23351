"""Train the ranker: from qrels (offline judgments) or from logged clicks.

Both paths build one query group per query (qrels) or per request (clicks): the union of
the strategies' candidates, its feature matrix and a graded label per candidate, then
fit XGBoost LambdaMART (`rank:ndcg`) with `xgboost.train` on a DMatrix with groups, and
write a versioned JSON artifact (see `ranking.model`).

Metrics (see `ranking.groups`): nDCG@10 from ir-measures, for the ranker and the RRF order of the same
candidates, so a manifest says whether the model beats the ranking it would replace. The
building blocks (`candidates_for`, `evaluate_ranker`) are re-exported here.

Clicks are position-biased: users click what is shown on top. `train_from_clicks` uses
XGBoost's Unbiased LambdaMART (Hu et al., WWW 2019; `lambdarank_unbiased=True`), which
estimates the examination bias per position jointly with the ranker. XGBoost takes a
row's position from its order inside its query group, so each group lists the shown
items in the order shown, then the candidates that were not shown. A click on an entity
shown beside the results (a card, a related artist) labels the results it was shown
through with its type's label (`core.credit`, `ranking.groups.click_groups`).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from core.model import Dataset, Item
from core.records import EventRecord, RequestRecord
from core.text import normalize
from ranking.groups import (
    DEFAULT_BUDGETS,
    EVENT_LABELS,
    Group,
    candidates_for,
    click_groups,
    compare,
    evaluate_ranker,
    ndcg10,
    qrels_groups,
    rankings,
)
from ranking.model import TrainedOn, write_artifact
from retrievers.index import IndexHandle

__all__ = ["DEFAULT_BUDGETS", "EVENT_LABELS", "RankerTrainConfig", "candidates_for", "evaluate_ranker", "fit",
           "position_bias", "train_from_clicks", "train_from_qrels"]


class RankerTrainConfig(BaseModel):
    """How to train the ranker. Defaults suit a few hundred to a few thousand query groups."""

    model_config = ConfigDict(extra="forbid")
    objective: Literal["rank:ndcg", "rank:pairwise", "rank:map"] = Field("rank:ndcg", description="LambdaMART loss")
    lambdarank_pair_method: Literal["topk", "mean"] = Field(
        "topk", description="pairs from the top-k of the current ranking (topk) or sampled per item (mean)")
    lambdarank_num_pair_per_sample: int = Field(
        20, ge=1, description="k for topk (a bit above the target cut-off 10); pairs per item for mean. "
                              "For clicks also the number of positions whose bias is estimated")
    num_boost_round: int = Field(200, ge=1, description="number of trees (upper bound with early stopping)")
    early_stopping_rounds: int | None = Field(
        40, ge=1, description="stop when validation nDCG@10 has not improved for this many rounds; None: never")
    max_depth: int = Field(6, ge=1, le=16)
    eta: float = Field(0.1, gt=0, le=1, description="learning rate")
    min_child_weight: float = Field(1.0, ge=0)
    subsample: float = Field(1.0, gt=0, le=1)
    colsample_bytree: float = Field(1.0, gt=0, le=1)
    tree_method: Literal["hist", "approx", "exact"] = "hist"
    nthread: int = Field(2, ge=1, description="XGBoost threads")
    seed: int = Field(0, ge=0, description="XGBoost seed, also salts the train/validation split")
    validation_share: float = Field(0.2, ge=0, lt=1, description="share of queries held out for validation")
    budgets: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_BUDGETS),
                                    description="candidates taken per strategy to build training groups")
    min_click_groups: int = Field(10, ge=1, description="train_from_clicks refuses fewer requests with a click")
    click_unshown: Literal["after", "drop"] = Field(
        "after", description="candidates that were not shown: appended after the shown ones (label 0) or dropped")
    progress: bool = Field(True, description="show tqdm progress bars")

    def xgb_params(self) -> dict[str, Any]:
        return {"objective": self.objective, "lambdarank_pair_method": self.lambdarank_pair_method,
                "lambdarank_num_pair_per_sample": self.lambdarank_num_pair_per_sample,
                "max_depth": self.max_depth, "eta": self.eta, "min_child_weight": self.min_child_weight,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "tree_method": self.tree_method, "nthread": self.nthread, "seed": self.seed,
                "eval_metric": "ndcg@10"}


# -- training ---------------------------------------------------------------------------------

def _is_validation(key: str, config: RankerTrainConfig) -> bool:
    """Deterministic split by a salted hash of the query, independent of data order."""
    h = int.from_bytes(hashlib.sha256(f"{config.seed}:{key}".encode()).digest()[:8], "big")
    return h / 2.0 ** 64 < config.validation_share


def _dmatrix(groups: Sequence[Group]) -> xgb.DMatrix:
    dm = xgb.DMatrix(np.vstack([g.X for g in groups]), label=np.concatenate([g.y for g in groups]))
    dm.set_group([len(g.cands) for g in groups])
    return dm


class _BoosterRanker:
    """A booster still in training, behind the Ranker interface (for validation metrics)."""

    version = "in-training"

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    def predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float32)))


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc="boosting", unit="tree", disable=not enabled, mininterval=1.0)

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.bar.update(1)
        return False

    def after_training(self, model):
        self.bar.close()
        return model


def fit(train: Sequence[Group], valid: Sequence[Group], params: Mapping[str, Any],
        config: RankerTrainConfig, early_stopping: bool = True) -> tuple[xgb.Booster, dict[str, Any]]:
    """xgboost.train on the groups, with early stopping on validation nDCG@10 when asked and
    there is a validation set; returns the booster cut at its best iteration, and training facts."""
    start = time.perf_counter()
    dtrain = _dmatrix(train)
    evals = [(_dmatrix(valid), "validation")] if valid else []
    stop = config.early_stopping_rounds if (evals and early_stopping) else None
    booster = xgb.train(dict(params), dtrain, num_boost_round=config.num_boost_round, evals=evals,
                        early_stopping_rounds=stop, verbose_eval=False,
                        callbacks=[_Progress(config.num_boost_round, config.progress)])
    if stop and booster.best_iteration + 1 < booster.num_boosted_rounds():
        booster = booster[: booster.best_iteration + 1]
    info = {"trees": booster.num_boosted_rounds(), "train_seconds": round(time.perf_counter() - start, 2)}
    return booster, info


def position_bias(booster: xgb.Booster) -> dict[str, list[float]]:
    """Unbiased LambdaMART's estimated bias per position (ti+ for clicked, tj- for unclicked
    items, position 1 = 1.0); empty when the model was not trained with lambdarank_unbiased."""
    objective = json.loads(booster.save_config())["learner"]["objective"]
    return {k: [round(float(v), 4) for v in objective.get(k, [])] for k in ("ti+", "tj-")}


def train_from_qrels(index: IndexHandle, dataset: Dataset, split: str = "train",
                     config: RankerTrainConfig | None = None, *, models_root: Path) -> Path:
    """Train on the judged queries of `split` (labels: qrels grades over each query's candidates),
    validate on a held-out share of them, write the artifact and return its directory."""
    config = config or RankerTrainConfig()
    start = time.perf_counter()
    groups = qrels_groups(index, dataset, split, config.budgets, progress=config.progress)
    valid_all = [g for g in groups if _is_validation(g.qid, config)]
    train = [g for g in groups if not _is_validation(g.qid, config) and g.has_positive]
    valid = [g for g in valid_all if g.has_positive]
    if not train:
        raise ValueError(f"no query of split {split!r} has a relevant item among its candidates; nothing to train on")
    booster, info = fit(train, valid, config.xgb_params(), config)
    metrics: dict[str, Any] = {**info, "collect_and_train_seconds": round(time.perf_counter() - start, 2),
                               "train_queries": len(train), "validation_queries": len(valid_all)}
    if valid_all:
        qrels = dataset.split(split).qrels
        val = compare(valid_all, qrels, _BoosterRanker(booster))
        metrics.update({"validation_ndcg@10": val["ranker"], "validation_rrf_ndcg@10": val["rrf"],
                        "validation_by_strategy_ndcg@10": {k: v for k, v in val.items() if k not in ("ranker", "rrf")}})
    used = train + valid
    trained_on = TrainedOn(source="qrels", dataset={"name": dataset.name, "spec": dataset.spec, "split": split,
                                                     "fingerprint": dataset.fingerprint(),
                                                     "budgets": dict(config.budgets)},
                           n_queries=len(used), n_rows=int(sum(len(g.cands) for g in used)))
    params = {**config.xgb_params(), "num_boost_round": config.num_boost_round,
              "early_stopping_rounds": config.early_stopping_rounds}
    return write_artifact(models_root, booster, trained_on=trained_on, params=params, metrics=metrics)


def train_from_clicks(requests: Sequence[RequestRecord], events: Sequence[EventRecord], catalog: Mapping[str, Item],
                      config: RankerTrainConfig | None = None, models_root: Path | None = None,
                      eta: float = 1.0) -> Path:
    """Train on logged feedback: labels from events joined on request_id, features from the logged
    candidates, position bias corrected by XGBoost's Unbiased LambdaMART.

    `eta` is the strength of position bias assumed in the logs, as in `ClickModel`: 0 means
    clicks are taken at face value (plain LambdaMART); any eta > 0 turns on
    `lambdarank_unbiased`, which *estimates* the per-position bias from the data for the
    first `lambdarank_num_pair_per_sample` positions (so eta's value beyond > 0 is only
    recorded). Requests without a positive event are skipped. ValueError when fewer than
    `config.min_click_groups` requests have a click."""
    if models_root is None:
        raise ValueError("models_root is required: the directory that holds the ranker versions")
    if not (isinstance(eta, (int, float)) and np.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta (position bias strength) must be a number >= 0, got {eta!r}")
    config = config or RankerTrainConfig()
    groups = click_groups(requests, events, catalog, config.click_unshown)
    if len(groups) < config.min_click_groups:
        raise ValueError(f"too little feedback to train a ranker: {len(groups)} request(s) with a click, "
                         f"need at least {config.min_click_groups} (of {len(requests)} requests, "
                         f"{len(events)} events)")
    # split by query text, so that repeats of one query never sit on both sides
    is_val = {g.qid: _is_validation(normalize(g.query), config) for g in groups}
    train = [g for g in groups if not is_val[g.qid]]
    valid = [g for g in groups if is_val[g.qid]]
    if not train:
        train, valid = groups, []
    params = {**config.xgb_params(), "lambdarank_unbiased": eta > 0}
    # no early stopping: validation clicks carry the same position bias, so the model that
    # scores best on them is the one that imitates the logged order (they are reported only)
    booster, info = fit(train, [], params, config, early_stopping=False)
    metrics: dict[str, Any] = {**info, "train_requests": len(train), "validation_requests": len(valid),
                               "position_bias": position_bias(booster)}
    if valid:
        clicks = {g.qid: {c.item_id: int(y) for c, y in zip(g.cands, g.y) if y > 0} for g in valid}
        logged = {g.qid: [c.item_id for c in g.cands] for g in valid}
        metrics["validation_click_ndcg@10"] = ndcg10(clicks, rankings(valid, _BoosterRanker(booster)))
        metrics["validation_logged_order_click_ndcg@10"] = ndcg10(clicks, logged)
    ts = [r.ts for r in requests]
    trained_on = TrainedOn(source="clicks",
                           dataset={"requests": len(requests), "events": len(events),
                                    "ts_range": [min(ts), max(ts)] if ts else [],
                                    "ranker_versions": sorted({r.ranker_version for r in requests}),
                                    "unshown": config.click_unshown},
                           n_queries=len(train) + len(valid), n_rows=int(sum(len(g.cands) for g in train + valid)))
    params = {**params, "num_boost_round": config.num_boost_round,
              "early_stopping_rounds": None, "position_bias_eta": eta}
    return write_artifact(models_root, booster, trained_on=trained_on, params=params, metrics=metrics)


