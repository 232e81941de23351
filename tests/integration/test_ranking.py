"""Training the ranker on a small `builtin:music-demo` (600 tracks; the session's shared
`demo_index`, built once for this and the live tier) with every strategy built:
the ranker trained from qrels, and the one trained from simulated clicks, must both beat
the RRF order of the same candidates on the test split (nDCG@10 by qrels)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.model import Item
from core.records import Candidate, EventRecord, PlanRecord, RequestRecord
from engine.feedback_store import FeedbackShard, read_export
from ingest.registry import load_dataset
from ltrr.clicks import ClickModel
from ranking.features import FEATURE_NAMES
from ranking.model import (
    FALLBACK_VERSION,
    RankerModel,
)
from ranking.train import (
    RankerTrainConfig,
    candidates_for,
    compare,
    qrels_groups,
    train_from_clicks,
    train_from_qrels,
)
from retrievers.index import IndexHandle
from tests.helpers.service import DEMO_600

MUSIC = DEMO_600


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def cand(item_id: str, rank: int, strategy: str, score: float = 1.0) -> Candidate:
    return Candidate.of(strategy, item_id, rank, score)


CATALOG = {
    "a": Item("a", {"title": "Love Story", "artist": "Taylor Swift", "genre": "pop"}, popularity=95, year=2008),
    "b": Item("b", {"title": "Shake It Off", "artist": "Taylor Swift"}, popularity=0.0),
    "c": Item("c", {"title": "So What", "artist": "Miles Davis", "genre": "jazz"}, popularity=3, year=1959),
}


def _request(rid: str, query: str, cands: list[Candidate], shown: list[str]) -> RequestRecord:
    return RequestRecord(request_id=rid, ts=1.0, query=query, candidates=cands, shown=shown,
                         plan=PlanRecord(budgets={"lexical": 10}, propensity=1.0, policy_version="test"),
                         ranker_version=FALLBACK_VERSION)


# -- training on builtin:music-demo ---------------------------------------------------------------

@pytest.fixture(scope="module")
def music(demo_index):
    ds = load_dataset(MUSIC)
    index = IndexHandle.open(demo_index)
    catalog = index.catalog()
    budgets = RankerTrainConfig().budgets
    test_groups = qrels_groups(index, ds, "test", budgets, catalog, progress=False)
    return ds, index, catalog, test_groups


@pytest.fixture(scope="module")
def music_train_groups(music):
    ds, index, catalog, _ = music
    return qrels_groups(index, ds, "train", RankerTrainConfig().budgets, catalog, progress=False)


def test_candidates_for_unions_built_strategies(music):
    _, index, _, _ = music
    got = candidates_for(index, "chill jazz", {"lexical": 5, "structured": 5, "dense": 0, "nope": 3})
    assert got and len({c.item_id for c in got}) == len(got)
    assert {s for c in got for s in c.hits} <= {"lexical", "structured"}


def test_train_from_qrels_beats_rrf(music, tmp_path):
    ds, index, _, test_groups = music
    start = time.perf_counter()
    path = train_from_qrels(index, ds, "train", RankerTrainConfig(progress=False), models_root=tmp_path)
    seconds = time.perf_counter() - start
    model = RankerModel.load(path)
    manifest = model.manifest
    assert manifest.trained_on.source == "qrels" and manifest.trained_on.dataset["spec"] == ds.spec
    assert manifest.trained_on.dataset["fingerprint"] == ds.fingerprint() and manifest.trained_on.n_rows > 0
    assert manifest.metrics["validation_ndcg@10"] > manifest.metrics["validation_rrf_ndcg@10"]
    res = compare(test_groups, ds.split("test").qrels, model)
    print(f"music-demo qrels ranker: train {seconds:.1f}s, validation {manifest.metrics}, test {res}")
    assert res["ranker"] > res["rrf"]
    assert res["ranker"] > max(v for k, v in res.items() if k not in ("ranker",))


def _simulated_logs(groups, qrels, sessions: int = 3, depth: int = 20, eta: float = 1.0, seed: int = 1):
    """Users of the RRF order: each train query is searched `sessions` times, the top `depth`
    of the RRF-ordered union is shown, and a position-based ClickModel clicks on it."""
    clicks = ClickModel(eta=eta, seed=seed)
    requests, events = [], []
    for g in groups:
        for s in range(sessions):
            rid = f"{g.qid}/{s}"
            shown = [c.item_id for c in g.cands[:depth]]
            requests.append(_request(rid, g.query, g.cands, shown))
            events += [EventRecord(event_id=f"{rid}/{n}", request_id=rid, item_id=e.item_id, type=e.type,
                                   position=e.position, ts=1.0) for n, e in enumerate(clicks.simulate(shown, qrels[g.qid]))]
    return requests, events


def test_train_from_clicks_beats_rrf_and_estimates_position_bias(music, music_train_groups, tmp_path):
    ds, _, catalog, test_groups = music
    requests, events = _simulated_logs(music_train_groups, ds.split("train").qrels)
    # through the feedback store and its Parquet export, as the retrain job reads them
    with FeedbackShard(tmp_path / "feedback", 0) as shard:
        for rec in requests:
            shard.log_request(rec)
        by_request: dict[str, list] = {}
        for ev in events:
            by_request.setdefault(ev.request_id, []).append(ev)
        for rid, evs in by_request.items():
            shard.add_events(rid, evs)
        shard.export(tmp_path / "logs")
    requests, events = read_export(tmp_path / "logs")
    config = RankerTrainConfig(progress=False)
    results = {}
    for eta in (1.0, 0.0):  # unbiased LambdaMART on, then off
        start = time.perf_counter()
        path = train_from_clicks(requests, events, catalog, config, tmp_path / "models", eta=eta)
        seconds = time.perf_counter() - start
        model = RankerModel.load(path)
        assert model.manifest.trained_on.source == "clicks"
        results[eta] = compare(test_groups, ds.split("test").qrels, model)
        print(f"music-demo clicks ranker (unbiased={eta > 0}): train {seconds:.1f}s, test {results[eta]}")
        if eta > 0:
            bias = model.manifest.metrics["position_bias"]["ti+"]
    # the click-trained ranker beats the order the clicks were collected on
    assert results[1.0]["ranker"] > results[1.0]["rrf"]
    # position bias: the estimated examination bias falls with position like the simulated (1/r)^1 ...
    truth = 1.0 / np.arange(1, len(bias) + 1)
    assert len(bias) == config.lambdarank_num_pair_per_sample and bias[0] == 1.0
    assert np.corrcoef(np.log(bias), np.log(truth))[0, 1] > 0.9
    assert bias[1] < 0.7 and bias[9] < 0.3
    # ... and correcting for it ranks better than taking clicks at face value
    assert results[1.0]["ranker"] >= results[0.0]["ranker"]
