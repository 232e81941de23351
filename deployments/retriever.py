"""One Serve deployment per retrieval strategy, each with its own replicas and CPU share.

The same class serves every strategy; `build_app` binds it once per strategy under the
deployment name `retriever-<strategy>`, so `serve_config.yaml` scales each one on its
own. The memory strategy's replicas also pull click-learned query-to-item updates from
the feedback actors every `sync_interval_s` seconds; when a shard's epoch changes (a user
was erased), a replica reloads its index and applies every shard's updates again.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import os

from ray import serve

from core.records import Candidate
from deployments.feedback import RayFeedback
from retrievers import Query
from retrievers.index import IndexHandle

log = logging.getLogger("ray.serve")
# dense query encoding batched across concurrent requests: a call that finds others waiting
# goes with them; one alone waits at most BATCH_WAIT_S (benchmarks/serve_latency.py measures it)
BATCH_MAX, BATCH_WAIT_S = 16, 0.001


def deployment_name(strategy: str, shard: int | None = None) -> str:
    return f"retriever-{strategy}" if shard is None else f"retriever-{strategy}-shard{shard}"


def load_custom(custom: dict, index_dir: str):
    """A user strategy from {import_path: "module:Class", args: {...}}: Class.from_config(index_dir, **args)."""
    module, _, cls_name = custom["import_path"].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls.from_config(index_dir, **(custom.get("args") or {}))


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32, health_check_period_s=5)
class RetrieverDeployment:
    def __init__(self, strategy: str, index_dir: str, feedback_dir: str | None = None, feedback_shards: int = 0,
                 sync_interval_s: float = 2.0, custom: dict | None = None, shard: int | None = None):
        self.strategy = strategy
        self.index_dir = index_dir
        self.shard = shard  # serve one shard of a sharded strategy (retrievers/shards.py)
        # one torch thread per replica: replicas share few cores, and torch's default thread
        # pool spins against the other processes (scale dense with replicas instead)
        os.environ.setdefault("LTRR_TORCH_THREADS", "1")
        self.retriever = self._load(custom)
        self.feedback = (feedback_dir, feedback_shards)
        self.sync_interval_s = sync_interval_s
        self.cursors: list[int] = [0] * feedback_shards
        self.epochs: list[int] | None = None  # the shards' epochs the cursors belong to
        self._sync_task: asyncio.Task | None = None
        try:
            self.retriever.retrieve("warm up", 1)  # load lazy parts (JVM classes, model) before traffic
        except Exception:
            if not custom:
                raise
            log.warning("%s: warm-up call failed (its service may be down); serving anyway", strategy)

    def _load(self, custom: dict | None = None):
        if custom:
            return load_custom(custom, self.index_dir)
        index = IndexHandle.open(self.index_dir)
        return index.load(self.strategy) if self.shard is None else index.load_shard(self.strategy, self.shard)

    async def retrieve(self, query: Query, k: int) -> list[Candidate]:
        """At most k candidates, best first. Runs on the replica's event loop thread, so the
        JVM (lexical) is always called from one attached thread. A strategy that is cheaper in
        batches (`Retriever.batched`: dense) answers concurrent calls together."""
        if self.strategy == "memory" and self._sync_task is None and self.feedback[1]:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_memory())
        if not self.retriever.batched:
            return self.retriever.retrieve(query, k)
        out = await self._retrieve_batch((query, k))
        if isinstance(out, Exception):
            raise out
        return out

    @serve.batch(max_batch_size=BATCH_MAX, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _retrieve_batch(self, calls: list[tuple[Query, int]]) -> list[list[Candidate] | Exception]:
        return self.retriever.retrieve_many([q for q, _ in calls], [k for _, k in calls])

    async def _sync_memory(self) -> None:
        """Apply click-learned updates from every feedback shard, forever."""
        feedback = RayFeedback.create(*self.feedback)
        while True:
            try:
                applied = 0
                epochs = await feedback.epochs()
                if self.epochs is not None and epochs != self.epochs:  # a user was erased: start over
                    self.retriever = self._load()
                    self.cursors = [0] * feedback.n_shards
                    log.info("memory: feedback epochs %s -> %s; rebuilt from the index and the logs",
                             self.epochs, epochs)
                self.epochs = epochs
                for i in range(feedback.n_shards):
                    updates, latest = await feedback.memory_updates(i, self.cursors[i])
                    for _seq, query, item_id, weight in updates:
                        try:
                            self.retriever.update(query, item_id, weight)
                            applied += 1
                        except ValueError:
                            pass  # an item this index does not know: nothing to learn
                    self.cursors[i] = latest
                if applied:
                    log.info("memory: applied %d click updates", applied)
            except Exception as exc:  # keep serving; try again next round
                log.warning("memory sync failed: %s", exc)
            await asyncio.sleep(self.sync_interval_s)

    def check_health(self) -> None:
        self.retriever.retrieve("health", 1)
