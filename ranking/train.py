"""Train the ranker: from qrels (offline judgments) or from logged clicks.

Both paths build one query group per query (qrels) or per request (clicks): the union of
the strategies' candidates, its feature matrix and a graded label per candidate, then
fit XGBoost LambdaMART (`rank:ndcg`) with `xgboost.train` on a DMatrix with groups, and
write a versioned JSON artifact (see `ranking.model`).

Metrics: nDCG@10 from ir-measures, for the ranker and for the RRF order of the very same
candidates, so a manifest says whether the model beats the ranking it would replace.

Clicks are position-biased: users click what is shown on top. `train_from_clicks` uses
XGBoost's Unbiased LambdaMART (Hu et al., WWW 2019; `lambdarank_unbiased=True`), which
estimates the examination bias per position jointly with the ranker. XGBoost takes a
row's position from its order inside its query group, so each group lists the shown
items in the order shown, then the candidates that were not shown.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ir_measures
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb
from ir_measures import nDCG
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from ltrr.data.model import Dataset, Item
from ltrr.index_store import IndexHandle, check_same_data
from ltrr.records import CandidateRecord, EventRecord, RequestRecord
from ranking.features import featurize, union
from ranking.model import FallbackRanker, Ranker, TrainedOn, write_artifact
from retrievers import STRATEGIES, BadRequest, Query, Retriever
from retrievers.base import MAX_K
from retrievers.text import normalize

DEFAULT_BUDGETS: dict[str, int] = {"lexical": 100, "dense": 100, "memory": 25, "popularity": 25,
                                   "structured": 50, "explore": 10}
#: Label of an item from the feedback on it (the max over its events counts).
EVENT_LABELS: dict[str, int] = {"like": 3, "play": 2, "click": 1, "skip": 0}
NDCG10 = nDCG @ 10


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


@dataclass
class Group:
    """One query's candidates, features and labels. `qid` is the query id or the request id."""

    qid: str
    query: str
    cands: list[CandidateRecord]
    X: np.ndarray
    y: np.ndarray

    @property
    def has_positive(self) -> bool:
        return bool((self.y > 0).any())


# -- candidates -------------------------------------------------------------------------------

_LOADED: dict[tuple[str, str, str], Retriever] = {}


def load_retrievers(index: IndexHandle, names: Iterable[str]) -> dict[str, Retriever]:
    """The built strategies among `names`, loaded once per process and index build."""
    out = {}
    for name in names:
        if name not in index.manifest.get("strategies", {}):
            continue
        key = (str(Path(index.dir).resolve()), name, str(index.manifest["strategies"][name].get("built_at")))
        if key not in _LOADED:
            _LOADED[key] = index.load(name)
        out[name] = _LOADED[key]
    return out


def candidates_for(index: IndexHandle, query: str | Query, budgets: Mapping[str, int] | None = None
                   ) -> list[CandidateRecord]:
    """Run the built strategies with their budgets (0 or absent: not called; not built: skipped)
    in-process and return the union of their candidates, in RRF order."""
    budgets = DEFAULT_BUDGETS if budgets is None else budgets
    q = Query(text=query) if isinstance(query, str) else query
    wanted = [s for s in STRATEGIES if budgets.get(s, 0) > 0]
    results = {name: r.retrieve(q, min(int(budgets[name]), MAX_K))
               for name, r in load_retrievers(index, wanted).items()}
    return union(results)


def qrels_groups(index: IndexHandle, dataset: Dataset, split: str, budgets: Mapping[str, int] | None = None,
                 catalog: Mapping[str, Item] | None = None, progress: bool = True) -> list[Group]:
    """One group per judged query of `split`: candidates, features, labels = qrels grade (0 if unjudged).
    Groups without any relevant candidate are kept (evaluation needs them); training drops them."""
    check_same_data(index.manifest, dataset, index.dir)
    qs = dataset.split(split)
    catalog = index.catalog() if catalog is None else catalog
    groups = []
    for qid, text in tqdm(qs.judged().items(), desc=f"candidates {split}", unit="q", disable=not progress,
                          mininterval=1.0):
        try:
            cands = candidates_for(index, text, budgets)
        except BadRequest:
            continue  # e.g. an over-long query: no strategy would answer it at serve time either
        grades = qs.qrels.get(qid, {})
        y = np.array([max(0, int(grades.get(c.item_id, 0))) for c in cands], dtype=np.float32)
        groups.append(Group(qid, text, cands, featurize(text, cands, catalog), y))
    return groups


# -- metrics ----------------------------------------------------------------------------------

def ndcg10(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]]) -> float:
    """Mean nDCG@10 (ir-measures) over the queries of `qrels`; a query without a ranking scores 0.
    Rankings are item ids best first; scores 1/position keep that exact order."""
    if not qrels:
        return 0.0
    run = {q: {i: 1.0 / p for p, i in enumerate(r, 1)} for q, r in rankings.items() if r and q in qrels}
    per_query = {m.query_id: m.value for m in ir_measures.iter_calc([NDCG10], dict(qrels), run)}
    return round(float(sum(per_query.get(q, 0.0) for q in qrels) / len(qrels)), 4)


def _order(scores: np.ndarray, cands: Sequence[CandidateRecord]) -> list[str]:
    return [cands[i].item_id for i in sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].item_id))]


def rankings(groups: Sequence[Group], model: Ranker) -> dict[str, list[str]]:
    return {g.qid: _order(model.predict(g.X), g.cands) for g in groups}


def strategy_only(groups: Sequence[Group], strategy: str) -> dict[str, list[str]]:
    """Each group's candidates found by `strategy`, in that strategy's order: the strategy alone."""
    return {g.qid: [c.item_id for c in sorted((c for c in g.cands if strategy in c.hits),
                                              key=lambda c: c.hits[strategy].rank)] for g in groups}


def compare(groups: Sequence[Group], qrels: Mapping[str, Mapping[str, int]], model: Ranker) -> dict[str, float]:
    """nDCG@10 of the ranker, the RRF order and each strategy alone, all over the same candidates."""
    qrels = {g.qid: qrels.get(g.qid, {}) for g in groups}
    out = {"ranker": ndcg10(qrels, rankings(groups, model)),
           "rrf": ndcg10(qrels, rankings(groups, FallbackRanker()))}
    found = {s for g in groups for c in g.cands for s in c.hits}
    for s in (s for s in STRATEGIES if s in found):
        out[s] = ndcg10(qrels, strategy_only(groups, s))
    return out


def evaluate_ranker(model: Ranker, index: IndexHandle, dataset: Dataset, split: str = "test",
                    budgets: Mapping[str, int] | None = None, progress: bool = True) -> dict[str, float]:
    """Retrieve candidates for the judged queries of `split` and compare the ranker with RRF and
    each strategy alone on them (nDCG@10 by qrels). Keys: ranker, rrf, <strategy>, queries."""
    groups = qrels_groups(index, dataset, split, budgets, progress=progress)
    out: dict[str, float] = compare(groups, dataset.split(split).qrels, model)
    out["queries"] = len(dataset.split(split).judged())
    return out


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


def _click_labels(events: Iterable[EventRecord]) -> dict[str, dict[str, int]]:
    """request id -> item id -> label, the max over that item's events (like 3, play 2, click 1, skip 0)."""
    out: dict[str, dict[str, int]] = {}
    for e in events:
        label = EVENT_LABELS.get(e.type)
        if label is None:
            continue
        items = out.setdefault(e.request_id, {})
        items[e.item_id] = max(items.get(e.item_id, 0), label)
    return out


def click_groups(requests: Sequence[RequestRecord], events: Sequence[EventRecord], catalog: Mapping[str, Item],
                 unshown: Literal["after", "drop"] = "after") -> list[Group]:
    """One group per request with at least one positive event; rows in the order shown, then
    (unless dropped) the candidates not shown, in their logged order. Features come from the
    logged provenance (`hits`): nothing is retrieved again."""
    labels = _click_labels(events)
    groups = []
    for req in requests:
        got = labels.get(req.request_id)
        if not got or max(got.values()) <= 0:
            continue
        by_id = {c.item_id: c for c in req.candidates}
        shown = list(dict.fromkeys(req.shown))
        rows = [by_id.get(i) or CandidateRecord(item_id=i, hits={}) for i in shown]
        if unshown == "after":
            seen = set(shown)
            rows += [c for c in req.candidates if c.item_id not in seen]
        y = np.array([got.get(c.item_id, 0) for c in rows], dtype=np.float32)
        groups.append(Group(req.request_id, req.query, rows, featurize(req.query, rows, catalog), y))
    return groups


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
    # scores best on them is the one that imitates the logged order
    booster, info = fit(train, valid, params, config, early_stopping=False)
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
              "early_stopping_rounds": config.early_stopping_rounds, "position_bias_eta": eta}
    return write_artifact(models_root, booster, trained_on=trained_on, params=params, metrics=metrics)


# -- logs ---------------------------------------------------------------------------------------

REQUESTS_FILE = "requests.parquet"
EVENTS_FILE = "events.parquet"


def _write_json_parquet(path: Path, rows: Iterable[str]) -> None:
    table = pa.table({"json": pa.array(list(rows), type=pa.string())})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_logs(parquet_dir: Path, requests: Iterable[RequestRecord], events: Iterable[EventRecord]) -> None:
    """Write `requests.parquet` and `events.parquet`: one string column `json`, one record per row
    (`model_dump_json()`), each file replaced atomically."""
    parquet_dir = Path(parquet_dir)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    _write_json_parquet(parquet_dir / REQUESTS_FILE, (r.model_dump_json() for r in requests))
    _write_json_parquet(parquet_dir / EVENTS_FILE, (e.model_dump_json() for e in events))


def _read_json_parquet(path: Path, model: type[BaseModel]) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {path.parent} (expected the feedback log written by write_logs)")
    table = pq.read_table(path)
    if "json" not in table.column_names:
        raise ValueError(f"{path} has no 'json' column (columns: {', '.join(table.column_names)})")
    return [model.model_validate_json(s) for s in table.column("json").to_pylist() if s]


def load_logs(parquet_dir: Path) -> tuple[list[RequestRecord], list[EventRecord]]:
    """Read back what `write_logs` wrote: (requests, events)."""
    parquet_dir = Path(parquet_dir)
    return (_read_json_parquet(parquet_dir / REQUESTS_FILE, RequestRecord),
            _read_json_parquet(parquet_dir / EVENTS_FILE, EventRecord))
