"""Feedback actors: named, sharded Ray actors that store request logs and feedback
events durably (fsync before they answer) and aggregate them; and `RayFeedback`, the
`engine.feedback_client.FeedbackClient` over them.

Each actor wraps one `engine.feedback_store.FeedbackShard`. Requests are routed to shard
`shard_of(request_id)`, so a request's log and its feedback meet in one shard, which
can refuse feedback for unknown request ids. The actors restart on failure
(`max_restarts=-1`) and rebuild their state from their files; calls made while one
restarts are retried (`max_task_retries=-1`), so no acknowledged event is lost and no
caller sees the restart. They are detached: they outlive app redeploys.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import ray
from ray.actor import ActorHandle

from core.records import EventRecord, RequestRecord
from deployments.metrics import FeedbackMetrics
from engine.erasure import EraseCounts
from engine.feedback_stats import FeedbackTotals
from engine.feedback_store import AddResult, ExportCounts, FeedbackShard, MemoryUpdate, shard_of
from engine.history_feed import HistoryDelta
from rl.features import History

NAMESPACE = "ltrr"


def actor_name(shard: int) -> str:
    return f"ltrr-feedback-{shard}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1)
class FeedbackActor:
    """One durable shard. Records travel as JSON text (validated here); answers are models."""

    def __init__(self, directory: str, shard: int):
        self.store = FeedbackShard(Path(directory), shard)
        self.metrics = FeedbackMetrics()

    def log_request(self, record_json: str) -> None:
        self.store.log_request(RequestRecord.model_validate_json(record_json), record_json)

    def log_requests(self, record_jsons: list[str]) -> None:
        """Several requests with one fsync (the orchestrator batches concurrent requests' logs)."""
        self.store.log_requests([RequestRecord.model_validate_json(t) for t in record_jsons], record_jsons)

    def add_events(self, request_id: str, events_json: list[str]) -> AddResult:
        events = [EventRecord.model_validate_json(e) for e in events_json]
        before = self.store.counters()  # one call at a time (max_concurrency=1): the delta is this call's
        res = self.store.add_events(request_id, events)
        after = self.store.counters()
        self.metrics.record({t: n - before["events_by_type"].get(t, 0) for t, n in after["events_by_type"].items()},
                            {s: n - before["hits"].get(s, 0) for s, n in after["hits"].items()})
        return res

    def stats(self) -> FeedbackTotals:
        return self.store.stats()

    def memory_updates(self, since: int, limit: int = 10000) -> tuple[list[MemoryUpdate], int]:
        return self.store.memory_updates(since, limit)

    def context_history(self, user_id: str | None, query: str) -> History:
        return self.store.context_history(user_id, query)

    def history_delta(self, instance: str | None, since: int) -> HistoryDelta:
        return self.store.history_delta(instance, since)

    def export(self, out_dir: str) -> ExportCounts:
        return self.store.export(Path(out_dir))

    def erase_user(self, user_id: str) -> EraseCounts:
        return self.store.erase_user(user_id)

    def epoch(self) -> int:
        return self.store.epoch


class RayFeedback:
    """`FeedbackClient` over the feedback actors (see the module docstring)."""

    def __init__(self, actors: list[ActorHandle]) -> None:
        self.actors = actors
        self.n_shards = len(actors)

    @classmethod
    def create(cls, directory: str | Path, n_shards: int) -> RayFeedback:
        """The n feedback actors, created on first use (idempotent across callers)."""
        return cls([FeedbackActor.options(name=actor_name(i), namespace=NAMESPACE, lifetime="detached",
                                          get_if_exists=True).remote(str(directory), i)
                    for i in range(n_shards)])

    @classmethod
    def lookup(cls, n_shards: int) -> RayFeedback:
        """Handles to running feedback actors (for CLIs and jobs); ValueError if one is missing."""
        return cls([ray.get_actor(actor_name(i), namespace=NAMESPACE) for i in range(n_shards)])

    def actor(self, request_id: str) -> ActorHandle:
        return self.actors[shard_of(request_id, self.n_shards)]

    async def log_request(self, record: RequestRecord) -> None:
        await self.actor(record.request_id).log_request.remote(record.model_dump_json())

    async def log_requests(self, records: Sequence[RequestRecord]) -> None:
        by_shard: dict[int, list[str]] = {}
        for r in records:
            by_shard.setdefault(shard_of(r.request_id, self.n_shards), []).append(r.model_dump_json())
        await asyncio.gather(*[self.actors[i].log_requests.remote(texts) for i, texts in by_shard.items()])

    async def add_events(self, request_id: str, events: Sequence[EventRecord]) -> AddResult:
        return await self.actor(request_id).add_events.remote(request_id, [e.model_dump_json() for e in events])

    async def history(self, user_id: str | None, query: str) -> History:
        return History.merge([await ref for ref in [a.context_history.remote(user_id, query) for a in self.actors]])

    async def history_delta(self, shard: int, instance: str | None, since: int) -> HistoryDelta:
        return await self.actors[shard].history_delta.remote(instance, since)

    async def totals(self) -> FeedbackTotals:
        return FeedbackTotals.merge([await ref for ref in [a.stats.remote() for a in self.actors]])

    async def memory_updates(self, shard: int, since: int, limit: int = 10000) -> tuple[list[MemoryUpdate], int]:
        return await self.actors[shard].memory_updates.remote(since, limit)

    async def export(self, out_dir: Path) -> list[ExportCounts]:
        return [await ref for ref in [a.export.remote(str(out_dir)) for a in self.actors]]

    async def erase_user(self, user_id: str) -> list[EraseCounts]:
        return [await ref for ref in [a.erase_user.remote(user_id) for a in self.actors]]

    async def epochs(self) -> list[int]:
        return [await ref for ref in [a.epoch.remote() for a in self.actors]]
