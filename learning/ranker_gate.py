"""The ranker's promotion gate, and the one promotion step every ranker path goes through.

`gate_ranker` judges a candidate ranker against the one serving now on held-out logged
requests: the logged requests with a click, play or like whose normalized query falls
in the training's validation share (`ranking.train`'s hash split, so a ranker trained on
clicks never saw them; one trained on qrels never saw any log). Both rankers reorder
each request's logged candidates (features from the logged provenance, as in training);
per request, click nDCG@10 (gain = label, 1/log2(rank+1)) of the candidate minus that of
the serving ranker; the mean and a seeded percentile bootstrap 95% interval of it. The
gate passes when the mean is >= -tolerance and at least `MIN_HELD_OUT` requests were
judged. With fewer, it passes only when the serving ranker is the RRF fallback and the
candidate's own held-out validation (its manifest: qrels or clicks) beats the RRF order.

`promote_ranker` is what `ltrr train-ranker --promote` and `ltrr retrain` both call:
gate, then promote through the `Promoter` and append to the promotion history only if
it passed; the gate's verdict is written next to the artifact (`promotion.json`).
Rollback (`learning.retrain.rollback`) returns to a version that passed before; it is
not gated.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.model import Item
from core.paths import StatePaths
from core.records import EventRecord, RequestRecord
from core.text import normalize
from learning.registry import record_promotion
from ranking.groups import Group, click_groups, rankings
from ranking.model import FallbackRanker, Ranker, RankerModel, read_manifest
from ranking.train import RankerTrainConfig, _is_validation

MIN_HELD_OUT = 20
N_BOOT = 1000
FALLBACK_NAMES = ("", "fallback", "fallback-rrf")


def _ndcg10(order: Sequence[str], labels: Mapping[str, int]) -> float:
    dcg = sum(labels.get(i, 0) / math.log2(p + 1) for p, i in enumerate(order[:10], 1))
    ideal = sorted((v for v in labels.values() if v > 0), reverse=True)[:10]
    best = sum(v / math.log2(p + 1) for p, v in enumerate(ideal, 1))
    return dcg / best if best > 0 else 0.0


def load_ranker(models_root: Path, version: str) -> Ranker:
    return FallbackRanker() if version in FALLBACK_NAMES else RankerModel.load(Path(models_root) / version)


def held_out(requests: Sequence[RequestRecord], events: Sequence[EventRecord],
             catalog: Mapping[str, Item]) -> list[Group]:
    """The logged requests with a positive event in the training's validation share."""
    config = RankerTrainConfig()
    return [g for g in click_groups(requests, events, catalog) if _is_validation(normalize(g.query), config)]


def gate_ranker(models_root: Path, candidate: str, serving: str, groups: Sequence[Group],
                tolerance: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """The verdict on serving `candidate` instead of `serving` (see the module docstring)."""
    models_root = Path(models_root)
    cand_model, serv_model = load_ranker(models_root, candidate), load_ranker(models_root, serving)
    labels = {g.qid: {c.item_id: int(y) for c, y in zip(g.cands, g.y) if y > 0} for g in groups}
    cand_order, serv_order = rankings(groups, cand_model), rankings(groups, serv_model)
    diffs = np.array([_ndcg10(cand_order[g.qid], labels[g.qid]) - _ndcg10(serv_order[g.qid], labels[g.qid])
                      for g in groups])
    out: dict[str, Any] = {"candidate": candidate, "serving": serving or "fallback", "held_out_requests": len(groups),
                           "tolerance": tolerance, "metric": "click nDCG@10 on held-out logged requests"}
    if len(groups):
        rng = np.random.default_rng(seed)
        boot = diffs[rng.integers(0, len(diffs), size=(N_BOOT, len(diffs)))].mean(axis=1)
        out.update({"candidate_ndcg@10": round(float(np.mean([_ndcg10(cand_order[g.qid], labels[g.qid])
                                                                for g in groups])), 4),
                    "serving_ndcg@10": round(float(np.mean([_ndcg10(serv_order[g.qid], labels[g.qid])
                                                              for g in groups])), 4),
                    "difference": round(float(diffs.mean()), 4),
                    "ci95": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)]})
    if len(groups) >= MIN_HELD_OUT:
        out["promote"] = bool(diffs.mean() >= -tolerance)
        out["reason"] = (f"candidate - serving = {out['difference']:+.4f} (95% CI {out['ci95']}) "
                         f"{'>=' if out['promote'] else '<'} -{tolerance}")
        return out
    metrics = read_manifest(models_root / candidate).metrics if candidate not in FALLBACK_NAMES else {}
    own = metrics.get("validation_ndcg@10", metrics.get("validation_click_ndcg@10"))
    base = metrics.get("validation_rrf_ndcg@10", metrics.get("validation_logged_order_click_ndcg@10"))
    out["own_validation"] = {"candidate": own, "baseline": base}
    out["promote"] = bool(serving in FALLBACK_NAMES and own is not None and base is not None and own > base)
    out["reason"] = (f"only {len(groups)} held-out logged requests (< {MIN_HELD_OUT}); "
                     + ("the serving ranker is the RRF fallback and the candidate's own validation beats it "
                        f"({own} > {base})" if out["promote"] else
                        "not enough evidence against the serving ranker: refused"))
    return out


def promote_ranker(paths: StatePaths, promoter: Any, version: str, requests: Sequence[RequestRecord],
                   events: Sequence[EventRecord], catalog: Mapping[str, Item], reason: str,
                   tolerance: float = 0.0) -> dict[str, Any]:
    """Gate `version` against the serving ranker; if it passes, serve it and record the promotion."""
    current = promoter.current("ranker")
    verdict = gate_ranker(paths.ranker_models, version, current, held_out(requests, events, catalog), tolerance)
    artifact = paths.ranker_models / version
    if artifact.is_dir():
        (artifact / "promotion.json").write_text(json.dumps({**verdict, "path": reason}, indent=1))
    if verdict["promote"]:
        promoter.promote("ranker", version)
        record_promotion(paths, "ranker", version, current, reason)
    return {"version": version, "previous": current, "promoted": verdict["promote"], "gate": verdict}
