"""The ranker without indexes: union with provenance, features, artifacts, the fallback, click-training guards."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from core.model import Item
from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from ranking import model as model_mod
from ranking.features import FEATURE_NAMES, featurize
from ranking.fusion import union
from ranking.model import (
    FALLBACK_VERSION,
    FallbackRanker,
    RankerArtifactError,
    RankerModel,
    latest_version,
    list_versions,
    load_latest,
    new_version,
    rank,
    write_artifact,
)
from ranking.train import (
    RankerTrainConfig,
    train_from_clicks,
)
from retrievers import STRATEGIES

MUSIC = "builtin:music-demo?n_tracks=600&n_artists=100"


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def cand(item_id: str, rank: int, strategy: str, score: float = 1.0) -> Candidate:
    return Candidate.of(strategy, item_id, rank, score)


CATALOG = {
    "a": Item("a", {"title": "Love Story", "artist": "Taylor Swift", "genre": "pop"}, popularity=95, year=2008),
    "b": Item("b", {"title": "Shake It Off", "artist": "Taylor Swift"}, popularity=0.0),
    "c": Item("c", {"title": "So What", "artist": "Miles Davis", "genre": "jazz"}, popularity=3, year=1959),
}


# -- union and features -------------------------------------------------------------------------

def test_union_keeps_provenance_and_orders_by_rrf():
    got = union({"lexical": [cand("a", 1, "lexical", 7.5), cand("b", 2, "lexical", 6.0)],
                 "dense": [cand("b", 1, "dense", 0.9), cand("c", 2, "dense", 0.8)]})
    assert [c.item_id for c in got] == ["b", "a", "c"]  # b: 1/62 + 1/61 > a: 1/61 > c: 1/62
    b = got[0]
    assert set(b.hits) == {"lexical", "dense"}
    assert b.hits["lexical"] == Hit(2, 6.0) and b.hits["dense"] == Hit(1, 0.9)
    assert set(got[1].hits) == {"lexical"} and set(got[2].hits) == {"dense"}
    assert union({}) == [] and union({"lexical": []}) == []


def test_union_keeps_the_best_rank_of_a_repeated_item():
    got = union({"memory": [cand("a", 3, "memory", 0.1), cand("a", 1, "memory", 0.9)]})
    assert len(got) == 1 and got[0].hits["memory"] == Hit(1, 0.9)


def test_feature_names_and_shape():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 5 * len(STRATEGIES) + 11
    assert FEATURE_NAMES[3 * len(STRATEGIES):5 * len(STRATEGIES)] == [
        f"{s}_{k}" for s in STRATEGIES for k in ("score_gap", "score_rel")]
    assert FEATURE_NAMES[:3 * len(STRATEGIES)] == [f"{s}_{k}" for s in STRATEGIES for k in ("found", "rr", "score")]
    cands = union({"lexical": [cand("a", 1, "lexical")], "dense": [cand("c", 1, "dense")]})
    X = featurize("love story", cands, CATALOG)
    assert X.shape == (2, len(FEATURE_NAMES)) and X.dtype == np.float32
    assert featurize("x", [], CATALOG).shape == (0, len(FEATURE_NAMES))


def test_found_by_columns():
    cands = union({"lexical": [cand("a", 1, "lexical", 7.5), cand("b", 4, "lexical", 2.0)],
                   "structured": [cand("a", 2, "structured", 1.5)]})
    X = featurize("love story", cands, CATALOG)
    a, b = X[0], X[1]
    assert (a[col("lexical_found")], a[col("lexical_rr")], a[col("lexical_score")]) == (1.0, 1.0, 7.5)
    assert (a[col("structured_found")], a[col("structured_rr")], a[col("structured_score")]) == (1.0, 0.5, 1.5)
    assert a[col("dense_found")] == a[col("dense_rr")] == a[col("dense_score")] == 0.0
    assert a[col("n_found")] == 2 and a[col("rrf")] == pytest.approx(1 / 61 + 1 / 62)
    assert b[col("lexical_rr")] == pytest.approx(0.25) and b[col("n_found")] == 1
    assert b[col("structured_found")] == 0.0
    # relative scores, per strategy over its candidates in this list
    assert a[col("lexical_score_gap")] == 0 and b[col("lexical_score_gap")] == pytest.approx(-5.5)
    assert a[col("lexical_score_rel")] == 1 and b[col("lexical_score_rel")] == 0
    assert a[col("structured_score_gap")] == 0 and a[col("structured_score_rel")] == 1  # alone: its own best
    assert b[col("structured_score_gap")] == b[col("structured_score_rel")] == 0 == a[col("dense_score_rel")]


def test_query_item_and_match_features():
    cands = union({"lexical": [cand("a", 1, "lexical"), cand("b", 2, "lexical"), cand("c", 3, "lexical")]})
    X = featurize("Love  Story!", cands, CATALOG)
    a, b = X[0], X[1]
    assert a[col("q_chars")] == len("Love  Story!") and a[col("q_tokens")] == 2
    assert a[col("item_log_popularity")] == pytest.approx(np.log1p(95)) and a[col("item_year")] == 2008
    assert a[col("item_has_year")] == 1 and b[col("item_has_year")] == 0 and b[col("item_year")] == 0
    assert a[col("match_title_frac")] == 1 and a[col("match_title_exact")] == 1 and a[col("match_entity_exact")] == 1
    assert b[col("match_title_frac")] == 0 and b[col("match_title_exact")] == 0
    X = featurize("taylor swift love", cands, CATALOG)
    assert X[0, col("match_text_frac")] == 1 and X[0, col("match_title_frac")] == pytest.approx(1 / 3)
    assert X[1, col("match_text_frac")] == pytest.approx(2 / 3) and X[0, col("match_entity_exact")] == 0
    assert featurize("taylor swift", cands, CATALOG)[1, col("match_entity_exact")] == 1  # the artist field


def test_unknown_item_gets_zero_item_features():
    cands = union({"lexical": [cand("zzz", 1, "lexical", 3.0)]})
    x = featurize("love story", cands, CATALOG)[0]
    assert x[col("lexical_found")] == 1 and x[col("q_tokens")] == 2
    for name in ("item_log_popularity", "item_year", "item_has_year", "match_title_frac", "match_text_frac",
                 "match_title_exact", "match_entity_exact"):
        assert x[col(name)] == 0


# -- artifacts ----------------------------------------------------------------------------------

def _booster(rounds: int = 3) -> xgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.random((60, len(FEATURE_NAMES)), dtype=np.float32)
    dm = xgb.DMatrix(X, label=(X[:, 0] > 0.5).astype(np.float32))
    dm.set_group([20, 20, 20])
    return xgb.train({"objective": "rank:ndcg", "nthread": 1, "seed": 0}, dm, rounds)


TRAINED_ON = {"source": "qrels", "dataset": {"spec": "test"}, "n_queries": 3, "n_rows": 60}


def test_artifact_round_trip(tmp_path):
    booster = _booster()
    path = write_artifact(tmp_path, booster, trained_on=TRAINED_ON, params={"max_depth": 6},
                          metrics={"validation_ndcg@10": 0.5})
    assert path.parent == tmp_path and (path / "model.json").is_file()
    json.loads((path / "model.json").read_text())  # XGBoost JSON, not a pickle
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == path.name and manifest["feature_names"] == FEATURE_NAMES
    assert manifest["trained_on"]["source"] == "qrels" and manifest["metrics"]["validation_ndcg@10"] == 0.5
    assert set(manifest["code_version"]) >= {"ltrr", "xgboost"} and manifest["created_at"]
    m = RankerModel.load(path)
    assert m.version == path.name
    X = np.random.default_rng(1).random((7, len(FEATURE_NAMES)), dtype=np.float32)
    np.testing.assert_allclose(m.predict(X), booster.predict(xgb.DMatrix(X)), rtol=1e-6)
    assert m.predict(X[:0]).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        m.predict(X[:, :5])
    assert list_versions(tmp_path) == [path.name] and latest_version(tmp_path) == path.name
    assert load_latest(tmp_path).version == path.name


def test_feature_mismatch_is_refused(tmp_path):
    path = write_artifact(tmp_path, _booster(), trained_on=TRAINED_ON, params={})
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["feature_names"] = manifest["feature_names"][::-1]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RankerArtifactError, match="other features"):
        RankerModel.load(path)


@pytest.mark.parametrize("damage", ["model_garbage", "model_missing", "manifest_garbage", "manifest_missing",
                                    "manifest_fields", "no_dir"])
def test_corrupt_artifact_is_a_clear_error(tmp_path, damage):
    path = write_artifact(tmp_path, _booster(), trained_on=TRAINED_ON, params={})
    if damage == "model_garbage":
        (path / "model.json").write_text('{"learner": nonsense')
    elif damage == "model_missing":
        (path / "model.json").unlink()
    elif damage == "manifest_garbage":
        (path / "manifest.json").write_text("{not json")
    elif damage == "manifest_missing":
        (path / "manifest.json").unlink()
    elif damage == "manifest_fields":
        (path / "manifest.json").write_text(json.dumps({"version": path.name}))
    else:
        path = tmp_path / "r20990101-000000-abcd"
    with pytest.raises(RankerArtifactError) as err:
        RankerModel.load(path)
    assert str(path) in str(err.value)


def test_versions_sort_and_skip_incomplete_dirs(tmp_path):
    early, late = new_version(now=1_700_000_000), new_version(now=1_800_000_000)
    assert early < late and early.startswith("r2023") and len(early) == len("r20231114-221320-abcd")
    assert list_versions(tmp_path / "absent") == [] and latest_version(tmp_path) is None
    assert isinstance(load_latest(tmp_path), FallbackRanker)
    b = _booster(1)
    for v in (late, early):
        write_artifact(tmp_path, b, trained_on=TRAINED_ON, params={}, version=v)
    (tmp_path / ".tmp-r20991231-000000-0000-ff").mkdir()
    (tmp_path / "r20991231-000000-0000").mkdir()  # no manifest: not an artifact
    (tmp_path / "notes").mkdir()
    assert list_versions(tmp_path) == [early, late] and latest_version(tmp_path) == late
    with pytest.raises(FileExistsError):  # versions are immutable
        write_artifact(tmp_path, b, trained_on=TRAINED_ON, params={}, version=early)
    with pytest.raises(ValueError, match="does not look like"):
        write_artifact(tmp_path, b, trained_on=TRAINED_ON, params={}, version="latest")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(path, manifest):
        (path).write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(model_mod, "_write_manifest", boom)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(tmp_path, _booster(), trained_on=TRAINED_ON, params={})
    assert list(tmp_path.iterdir()) == []


def test_fallback_ranker_is_rrf_and_rank_breaks_ties_by_id():
    cands = union({"lexical": [cand("c", 1, "lexical"), cand("b", 2, "lexical")],
                   "dense": [cand("a", 1, "dense"), cand("b", 3, "dense")]})
    fb = FallbackRanker()
    assert fb.version == FALLBACK_VERSION == "fallback-rrf"
    got = rank(fb, "q", cands, CATALOG)
    assert [i for i, _ in got] == ["b", "a", "c"]  # a and c tie at 1/61: by id
    assert got[0][1] == pytest.approx(1 / 62 + 1 / 63)
    assert rank(fb, "q", [], CATALOG) == []


# -- click training -------------------------------------------------------------------------

def _request(rid: str, query: str, cands: list[Candidate], shown: list[str]) -> RequestRecord:
    return RequestRecord(request_id=rid, ts=1.0, query=query, candidates=cands, shown=shown,
                         plan=PlanRecord(budgets={"lexical": 10}, propensity=1.0, policy_version="test"),
                         ranker_version=FALLBACK_VERSION)


def test_too_few_clicks_is_refused(tmp_path):
    cands = [Candidate(item_id="a", hits={"lexical": Hit(1, 2.0)})]
    reqs = [_request(f"r{n}", "love story", cands, ["a"]) for n in range(20)]
    evs = [EventRecord(event_id=f"e{n}", request_id=f"r{n}", item_id="a", type="click", position=1, ts=2.0)
           for n in range(3)]
    with pytest.raises(ValueError, match="3 request"):
        train_from_clicks(reqs, evs, CATALOG, RankerTrainConfig(progress=False), tmp_path)
    assert list_versions(tmp_path) == []


def test_plan_featurizer_equals_featurizing_each_sub_plan():
    """The bench's vectorised sub-plan features are exactly `featurize` of the plan's candidates."""
    import numpy as np

    from core.model import Item
    from core.records import Candidate, Hit, within
    from ranking.features import PlanFeaturizer, featurize
    from retrievers import STRATEGIES

    rng = np.random.default_rng(4)
    catalog = {f"i{j}": Item(id=f"i{j}", fields={"title": f"song {j}", "artist": "a"}, popularity=float(j))
               for j in range(80)}
    cands = []
    for j in range(80):
        hits = {s: Hit(int(rng.integers(1, 101)), float(rng.normal())) for s in STRATEGIES if rng.random() < 0.35}
        if hits:
            cands.append(Candidate(f"i{j}", hits))
    feats = PlanFeaturizer("song 7", cands, catalog)
    for _ in range(50):
        plan = {s: int(rng.choice([0, 10, 25, 50, 100])) for s in STRATEGIES}
        got, X = feats.of(plan)
        want = within(cands, plan)
        assert [c.item_id for c in got] == [c.item_id for c in want]
        assert np.array_equal(X, featurize("song 7", want, catalog))
