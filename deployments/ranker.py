"""The XGBoost learning-to-rank deployment.

It scores the union of candidates with the features of `ranking.features` (which
strategies found each candidate, at which rank and score; query and item features).
Requests are batched with `@serve.batch` so one `predict` call scores several
requests' candidates. The model is chosen through `user_config`:

    user_config: {models_dir: state/models/ranker, version: latest}

and a new `user_config` (a new version, or `latest` after training) makes Serve call
`reconfigure()` on the live replicas: the model changes with no restart. Until a model
exists the ranker falls back to reciprocal-rank fusion (version `fallback-rrf`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ray import serve

from core.records import Candidate
from ranking.features import featurize
from ranking.model import FallbackRanker, RankerModel, by_score, latest_version
from retrievers.index import IndexHandle

log = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64)
class RankerDeployment:
    def __init__(self, index_dir: str):
        self.catalog = IndexHandle.open(index_dir).catalog_view()  # memory-mapped (retrievers/catalog_store.py)
        self.model: RankerModel | FallbackRanker = FallbackRanker()

    def reconfigure(self, config: dict) -> None:
        """Load the model named by user_config; keep the current one if that fails."""
        models_dir = config.get("models_dir")
        version = config.get("version", "latest")
        if not models_dir:
            return
        root = Path(models_dir)
        if version == "fallback":  # explicit: reciprocal-rank fusion, no model (a rollback target)
            self.model = FallbackRanker()
            return
        if version == "latest":
            version = latest_version(root)
            if version is None:
                log.info("ranker: no model in %s yet; serving %s", root, self.model.version)
                return
        if version == self.model.version:
            return
        self.model = RankerModel.load(root / version)
        log.info("ranker: now serving %s", self.model.version)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _rank_batch(self, requests: list[tuple[str, list[Candidate]]]) -> list[tuple[str, list]]:
        blocks = [featurize(q, cands, self.catalog) for q, cands in requests]
        sizes = [len(b) for b in blocks]
        scores = self.model.predict(np.concatenate(blocks)) if sum(sizes) else np.zeros(0)
        out, start = [], 0
        for (_, cands), n in zip(requests, sizes):
            out.append((self.model.version, by_score(cands, scores[start:start + n])))
            start += n
        return out

    async def rank(self, query: str, candidates: list[Candidate]) -> tuple[str, list[tuple[str, float]]]:
        """(model version, [(item_id, score)] best first) for one request's candidates."""
        return await self._rank_batch((query, candidates))

    def version(self) -> str:
        return self.model.version
