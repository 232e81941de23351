"""Versioned ranker artifacts, the loaded ranker, and the fallback used before any exists.

An artifact is a directory `models_root/<version>/` holding
    model.json      the booster in XGBoost's own JSON format (never pickle: an artifact may
                    come from elsewhere, and loading JSON cannot run code)
    manifest.json   version, created_at, feature_names, what it was trained on, params,
                    metrics and code version (see `RankerManifest`)
Versions look like `r20261123-231500-3fa2` (UTC time, then 4 random hex digits), so they
sort by creation time. An artifact is written into a hidden temporary directory and
renamed into place, so a reader never sees half of one and a failed write leaves nothing.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.model import Item
from core.records import Candidate, best_first
from ranking.features import FEATURE_NAMES, RRF_COL, featurize

MODEL_FILE = "model.json"
MANIFEST_FILE = "manifest.json"
FORMAT = 1
FALLBACK_VERSION = "fallback-rrf"
VERSION_RE = re.compile(r"^r\d{8}-\d{6}-[0-9a-f]{4}$")


class RankerArtifactError(ValueError):
    """A ranker artifact is missing, corrupt, or incompatible with this code's features."""


class TrainedOn(BaseModel):
    """What a model was trained from."""

    model_config = ConfigDict(extra="allow")
    source: Literal["qrels", "clicks"] = Field(description="offline judgments (qrels) or logged user feedback")
    dataset: dict[str, Any] = Field(default_factory=dict,
                                    description="dataset name, spec, fingerprint and split; or the log range")
    n_queries: int = Field(description="query groups used for training and validation")
    n_rows: int = Field(description="candidate rows (query-item pairs) in those groups")


class RankerManifest(BaseModel):
    """manifest.json of an artifact."""

    model_config = ConfigDict(extra="forbid")
    format: int = Field(FORMAT, description="artifact layout version")
    version: str = Field(description="sortable version name, also the directory name")
    created_at: str = Field(description="ISO 8601 UTC creation time")
    feature_names: list[str] = Field(description="the feature vector the model expects, in order")
    trained_on: TrainedOn
    params: dict[str, Any] = Field(description="XGBoost parameters and boosting rounds")
    metrics: dict[str, Any] = Field(default_factory=dict, description="validation metrics, e.g. ndcg@10")
    code_version: dict[str, str] = Field(default_factory=dict, description="ltrr and xgboost versions")


class Ranker(Protocol):
    """What serving needs from a ranker: a version and scores for a feature matrix."""

    version: str

    def predict(self, X: np.ndarray) -> np.ndarray: ...


def code_version() -> dict[str, str]:
    try:
        ltrr_version = metadata.version("ltrr")
    except metadata.PackageNotFoundError:
        ltrr_version = "not installed"
    return {"ltrr": ltrr_version, "xgboost": xgb.__version__}


def new_version(now: float | None = None) -> str:
    """A fresh, sortable version name: r<YYYYmmdd>-<HHMMSS>-<4 hex> in UTC."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"r{stamp}-{secrets.token_hex(2)}"


def _check_features(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected a feature matrix of shape [n, {len(FEATURE_NAMES)}], got {X.shape}")
    return np.ascontiguousarray(X)


class FallbackRanker:
    """The ranker used before any model is trained: scores are the RRF-sum feature, so the
    order is reciprocal-rank fusion of every strategy that found the item."""

    version = FALLBACK_VERSION

    def predict(self, X: np.ndarray) -> np.ndarray:
        return _check_features(X)[:, RRF_COL].astype(np.float32)


class RankerModel:
    """A trained XGBoost ranker loaded from its artifact directory."""

    def __init__(self, booster: xgb.Booster, manifest: RankerManifest, path: Path | None = None) -> None:
        self.booster = booster
        self.manifest = manifest
        self.version = manifest.version
        self.path = path

    @classmethod
    def load(cls, version_dir: Path, nthread: int = 1) -> RankerModel:
        """Load and check an artifact; RankerArtifactError says what is wrong and what to do."""
        version_dir = Path(version_dir)
        if not version_dir.is_dir():
            raise RankerArtifactError(f"no ranker artifact at {version_dir} (not a directory)")
        manifest = read_manifest(version_dir)
        if manifest.feature_names != FEATURE_NAMES:
            missing = [f for f in FEATURE_NAMES if f not in manifest.feature_names]
            extra = [f for f in manifest.feature_names if f not in FEATURE_NAMES]
            raise RankerArtifactError(
                f"ranker {manifest.version} at {version_dir} was trained on other features than this code computes "
                f"(missing: {missing or 'none'}, unknown: {extra or 'none'}, or a different order); retrain it")
        model_path = version_dir / MODEL_FILE
        if not model_path.is_file():
            raise RankerArtifactError(f"ranker artifact {version_dir} is incomplete: {MODEL_FILE} is missing")
        booster = xgb.Booster(params={"nthread": nthread})
        try:
            booster.load_model(str(model_path))
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise RankerArtifactError(f"ranker model {model_path} is corrupt ({first}); retrain it") from None
        if booster.num_features() != len(FEATURE_NAMES):
            raise RankerArtifactError(f"ranker model {model_path} expects {booster.num_features()} features, "
                                      f"the manifest lists {len(FEATURE_NAMES)}; the artifact is inconsistent")
        return cls(booster, manifest, version_dir)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for the rows of X (higher is better); X follows FEATURE_NAMES."""
        X = _check_features(X)
        if X.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.booster.inplace_predict(X, validate_features=False), dtype=np.float32)


def read_manifest(version_dir: Path) -> RankerManifest:
    path = Path(version_dir) / MANIFEST_FILE
    if not path.is_file():
        raise RankerArtifactError(f"{version_dir} is not a ranker artifact ({MANIFEST_FILE} is missing)")
    try:
        return RankerManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError, UnicodeDecodeError) as exc:
        reason = f"{exc.error_count()} invalid field(s)" if isinstance(exc, ValidationError) else str(exc)
        raise RankerArtifactError(f"ranker manifest {path} is corrupt ({reason}); retrain the model") from None


def _write_manifest(path: Path, manifest: RankerManifest) -> None:
    path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")


def write_artifact(models_root: Path, booster: xgb.Booster, *, trained_on: TrainedOn | Mapping[str, Any],
                   params: Mapping[str, Any], metrics: Mapping[str, Any] | None = None,
                   version: str | None = None) -> Path:
    """Save `booster` and its manifest as a new version under `models_root`, atomically.

    Everything is written into `models_root/.tmp-<version>-<random>/` and renamed to
    `models_root/<version>/` at the end; on any error the temporary directory is removed
    and the error re-raised, so no partial artifact is ever visible. Returns the directory."""
    models_root = Path(models_root)
    models_root.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = new_version()
        while (models_root / version).exists():
            version = new_version()
    elif not VERSION_RE.match(version):
        raise ValueError(f"version {version!r} does not look like r<YYYYmmdd>-<HHMMSS>-<4 hex>")
    elif (models_root / version).exists():
        raise FileExistsError(f"ranker version {version} already exists in {models_root}; versions are immutable")
    manifest = RankerManifest(
        version=version, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        feature_names=list(FEATURE_NAMES),
        trained_on=trained_on if isinstance(trained_on, TrainedOn) else TrainedOn(**trained_on),
        params=dict(params), metrics=dict(metrics or {}), code_version=code_version())
    tmp = models_root / f".tmp-{version}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        booster.save_model(str(tmp / MODEL_FILE))
        _write_manifest(tmp / MANIFEST_FILE, manifest)
        final = models_root / version
        os.rename(tmp, final)  # atomic on one filesystem; fails if `final` appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def list_versions(models_root: Path) -> list[str]:
    """Complete artifacts under `models_root`, oldest first (temporary directories are ignored)."""
    root = Path(models_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and VERSION_RE.match(p.name) and (p / MANIFEST_FILE).is_file())


def latest_version(models_root: Path) -> str | None:
    versions = list_versions(models_root)
    return versions[-1] if versions else None


def load_latest(models_root: Path) -> RankerModel | FallbackRanker:
    """The newest artifact under `models_root`, or the FallbackRanker when there is none."""
    version = latest_version(models_root)
    return FallbackRanker() if version is None else RankerModel.load(Path(models_root) / version)


def by_score(cands: Sequence[Candidate], scores: np.ndarray) -> list[tuple[str, float]]:
    """(item_id, score) best first, ties by item id: the one ordering serving and training share."""
    return best_first((c.item_id, float(s)) for c, s in zip(cands, scores))


def rank(model: Ranker, query: str, cands: Sequence[Candidate],
         catalog: Mapping[str, Item]) -> list[tuple[str, float]]:
    """Featurize, score and sort `cands`: (item_id, score) best first, ties by item id."""
    if not cands:
        return []
    return by_score(cands, model.predict(featurize(query, cands, catalog)))


def rank_many(model: Ranker, requests: Sequence[tuple[str, Sequence[Candidate]]],
              catalog: Mapping[str, Item]) -> list[list[tuple[str, float]]]:
    """`rank` for several requests with one `predict` call over all their candidates (the
    ranker deployment's batches): the same orders, without paying predict's per-call cost
    once per request."""
    blocks = [featurize(q, cands, catalog) for q, cands in requests]
    sizes = [len(b) for b in blocks]
    scores = model.predict(np.concatenate(blocks)) if sum(sizes) else np.zeros(0)
    out, start = [], 0
    for (_, cands), n in zip(requests, sizes):
        out.append(by_score(cands, scores[start:start + n]))
        start += n
    return out
