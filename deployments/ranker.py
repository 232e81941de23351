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

from ray import serve

from core.records import Candidate
from ranking.model import FallbackRanker, RankerModel, latest_version, rank_many
from retrievers.index import IndexHandle

log = logging.getLogger("ray.serve")
RANK_BATCH_MAX, RANK_BATCH_WAIT_S = 16, 0.0


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

    # sized by measurement (README "Serving latency"): scoring costs ~0.66 ms per request alone and
    # ~0.46 ms in batches of 8, less than a batching wait would add, so a batch is what is already
    # queued (no wait); dense, where batching pays (12.9 -> 5.8 ms per query), waits 1 ms
    @serve.batch(max_batch_size=RANK_BATCH_MAX, batch_wait_timeout_s=RANK_BATCH_WAIT_S)
    async def _rank_batch(self, requests: list[tuple[str, list[Candidate]]]) -> list[tuple[str, list]]:
        return [(self.model.version, ranked) for ranked in rank_many(self.model, requests, self.catalog)]

    async def rank(self, query: str, candidates: list[Candidate]) -> tuple[str, list[tuple[str, float]]]:
        """(model version, [(item_id, score)] best first) for one request's candidates."""
        return await self._rank_batch((query, candidates))

    def version(self) -> str:
        return self.model.version
