"""Every ranker promotion is gated (learning/ranker_gate.py), and each promotion path can be
rolled back: a deliberately worse ranker is refused, a better one promoted through
`ltrr retrain`'s path and through `ltrr train-ranker --promote`'s, and rolled back after each.

Synthetic logs: 360 requests over 72 queries, ten candidates each from lexical and dense
(dense in a random order), shown in RRF order; users click what lexical put first. The
worse ranker is trained on the mirror image (clicks on what lexical put last)."""
from __future__ import annotations

import random

import pytest

from core.paths import StatePaths
from core.records import Candidate, EventRecord, PlanRecord, RequestRecord
from learning.ranker_gate import gate_ranker, held_out, promote_ranker
from learning.registry import history
from learning.retrain import retrain_ranker, rollback
from ranking.fusion import union
from ranking.train import RankerTrainConfig, _is_validation, train_from_clicks
from tests.unit.test_ranker import CATALOG

ITEMS = sorted(CATALOG)


class FakePromoter:
    """What serves, in memory (the service's ServePromoter changes Serve's user_config)."""

    def __init__(self) -> None:
        self.serving = {"ranker": "fallback", "bandit": "fixed"}

    def current(self, kind: str) -> str:
        return self.serving[kind]

    def promote(self, kind: str, version: str) -> None:
        self.serving[kind] = version


def _logs(clicked_rank: int) -> tuple[list[RequestRecord], list[EventRecord]]:
    rng = random.Random(7)
    requests, events = [], []
    for n in range(360):
        items = rng.sample(ITEMS, min(10, len(ITEMS)))
        dense = items[:]
        rng.shuffle(dense)
        results = {"lexical": [Candidate.of("lexical", i, r, 10.0 - r) for r, i in enumerate(items, 1)],
                   "dense": [Candidate.of("dense", i, r, 1.0 / r) for r, i in enumerate(dense, 1)]}
        cands = union(results)
        rid = f"r{n}"
        requests.append(RequestRecord(
            request_id=rid, ts=float(n), query=f"query {n % 72}", candidates=cands, shown=[c.item_id for c in cands],
            plan=PlanRecord(budgets={"lexical": 10, "dense": 10}, propensity=1.0, policy_version="fixed-v1"),
            ranker_version="fallback-rrf"))
        target = items[clicked_rank]
        events.append(EventRecord(event_id=f"e{n}", request_id=rid, item_id=target, type="click",
                                  position=[c.item_id for c in cands].index(target) + 1, ts=n + 0.5))
    return requests, events


@pytest.fixture(scope="module")
def logs():
    return _logs(0)


def test_held_out_requests_are_the_training_validation_share(logs):
    groups = held_out(*logs, CATALOG)
    assert 20 <= len(groups) < 200
    config = RankerTrainConfig()
    assert {g.query for g in groups} == {f"query {n}" for n in range(72) if _is_validation(f"query {n}", config)}


def test_a_worse_ranker_is_refused_and_a_better_one_promoted_then_rolled_back(tmp_path, logs):
    paths = StatePaths(tmp_path / "state")
    requests, events = logs
    promoter = FakePromoter()
    config = RankerTrainConfig(progress=False)
    worse = train_from_clicks(*_logs(-1), CATALOG, config, paths.ranker_models).name
    refused = promote_ranker(paths, promoter, worse, requests, events, CATALOG, "train-ranker")
    assert not refused["promoted"], refused
    gate = refused["gate"]
    assert gate["held_out_requests"] >= 20 and gate["difference"] < 0 and gate["ci95"][1] < 0
    assert gate["candidate_ndcg@10"] < gate["serving_ndcg@10"]
    assert promoter.current("ranker") == "fallback" and history(paths, "ranker") == []
    assert (paths.ranker_models / worse / "promotion.json").exists()

    # path 1: `ltrr retrain` (learning.retrain.retrain_ranker), then rollback
    retrained = retrain_ranker(paths, CATALOG, requests, events, promoter)
    assert retrained["promoted"] and retrained["gate"]["difference"] > 0, retrained["gate"]
    assert promoter.current("ranker") == retrained["version"]
    assert rollback(paths, "ranker", promoter) == {"what": "ranker", "from": retrained["version"], "to": "fallback"}
    assert promoter.current("ranker") == "fallback"

    # path 2: `ltrr train-ranker --promote` (learning.ranker_gate.promote_ranker), then rollback
    better = train_from_clicks(requests, events, CATALOG, config, paths.ranker_models).name
    promoted = promote_ranker(paths, promoter, better, requests, events, CATALOG, "train-ranker")
    assert promoted["promoted"] and promoter.current("ranker") == better
    # against a trained serving ranker the worse one is refused too
    assert not gate_ranker(paths.ranker_models, worse, better, held_out(requests, events, CATALOG))["promote"]
    assert rollback(paths, "ranker", promoter)["to"] == "fallback"
    assert [(h["version"], h["previous"], h["reason"]) for h in history(paths, "ranker")] == [
        (retrained["version"], "fallback", "retrain"), ("fallback", retrained["version"], "rollback"),
        (better, "fallback", "train-ranker"), ("fallback", better, "rollback")]


def test_without_enough_held_out_logs_only_a_candidate_that_beats_rrf_replaces_the_fallback(tmp_path, logs):
    paths = StatePaths(tmp_path / "state")
    requests, events = logs
    better = train_from_clicks(requests, events, CATALOG, RankerTrainConfig(progress=False), paths.ranker_models).name
    few = held_out(requests, events, CATALOG)[:5]
    verdict = gate_ranker(paths.ranker_models, better, "fallback", few)
    assert verdict["promote"] and "own validation" in verdict["reason"]
    assert not gate_ranker(paths.ranker_models, better, better, few)["promote"]
