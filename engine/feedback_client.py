"""The feedback store as its callers see it: one client over all shards.

The orchestrator, the memory strategy's replicas, the retraining job and the bench talk
to the feedback log through `FeedbackClient`. It routes each request's log and its events
to one shard (`shard_of(request_id)`), so feedback meets the request it names and an
unknown request id can be refused; it merges what the shards aggregate (`FeedbackTotals`,
`History`). `LocalFeedback` holds the shards in this process (the bench, the tests);
`deployments.feedback.RayFeedback` calls the durable Ray actors that hold them in the
service. Both answer the same types.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from core.records import EventRecord, RequestRecord
from engine.erasure import EraseCounts
from engine.feedback_stats import FeedbackTotals
from engine.feedback_store import AddResult, ExportCounts, FeedbackShard, MemoryUpdate, shard_of
from engine.history_feed import HistoryDelta
from rl.features import History


class FeedbackClient(Protocol):
    """What every caller of the feedback store needs (see the module docstring)."""

    n_shards: int

    async def log_request(self, record: RequestRecord) -> None:
        """Store the request durably in its shard before returning."""
        ...

    async def log_requests(self, records: Sequence[RequestRecord]) -> None:
        """Store several requests durably, one write and fsync per shard (group commit)."""
        ...

    async def add_events(self, request_id: str, events: Sequence[EventRecord]) -> AddResult:
        """Store the events of one request durably (raises UnknownRequest, BadEvent)."""
        ...

    async def history(self, user_id: str | None, query: str) -> History:
        """The context history over every shard."""
        ...

    async def history_delta(self, shard: int, instance: str | None, since: int) -> HistoryDelta:
        """One shard's context history rows changed after `since` (engine/history_feed.py)."""
        ...

    async def totals(self) -> FeedbackTotals:
        """Aggregates summed over every shard."""
        ...

    async def memory_updates(self, shard: int, since: int, limit: int = 10000) -> tuple[list[MemoryUpdate], int]:
        """One shard's memory updates after `since`, and the cursor to pass next time."""
        ...

    async def export(self, out_dir: Path) -> list[ExportCounts]:
        """Every shard's logs as Parquet under `out_dir` (a consistent cut per shard)."""
        ...

    async def erase_user(self, user_id: str) -> list[EraseCounts]:
        """Remove the user's requests and their events from every shard, durably."""
        ...

    async def epochs(self) -> list[int]:
        """Every shard's epoch: it advances when an erasure renumbers the memory updates."""
        ...


class LocalFeedback:
    """`FeedbackClient` over shards held in this process."""

    def __init__(self, directory: Path, n_shards: int) -> None:
        self.n_shards = n_shards
        self.shards = [FeedbackShard(Path(directory), i) for i in range(n_shards)]

    def shard(self, request_id: str) -> FeedbackShard:
        return self.shards[shard_of(request_id, self.n_shards)]

    async def log_request(self, record: RequestRecord) -> None:
        self.shard(record.request_id).log_request(record)

    async def log_requests(self, records: Sequence[RequestRecord]) -> None:
        by_shard: dict[int, list[RequestRecord]] = {}
        for r in records:
            by_shard.setdefault(shard_of(r.request_id, self.n_shards), []).append(r)
        for i, recs in by_shard.items():
            self.shards[i].log_requests(recs)

    async def add_events(self, request_id: str, events: Sequence[EventRecord]) -> AddResult:
        return self.shard(request_id).add_events(request_id, events)

    async def history(self, user_id: str | None, query: str) -> History:
        return History.merge(s.context_history(user_id, query) for s in self.shards)

    async def history_delta(self, shard: int, instance: str | None, since: int) -> HistoryDelta:
        return self.shards[shard].history_delta(instance, since)

    async def totals(self) -> FeedbackTotals:
        return FeedbackTotals.merge(s.stats() for s in self.shards)

    async def memory_updates(self, shard: int, since: int, limit: int = 10000) -> tuple[list[MemoryUpdate], int]:
        return self.shards[shard].memory_updates(since, limit)

    async def export(self, out_dir: Path) -> list[ExportCounts]:
        return await asyncio.to_thread(lambda: [s.export(Path(out_dir)) for s in self.shards])

    async def erase_user(self, user_id: str) -> list[EraseCounts]:
        return [s.erase_user(user_id) for s in self.shards]

    async def epochs(self) -> list[int]:
        return [s.epoch for s in self.shards]

    def close(self) -> None:
        for s in self.shards:
            s.close()
