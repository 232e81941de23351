"""What /search and /feedback do, without HTTP or Ray: the orchestrator deployment serves
it, and `benchmarks/serve_latency.py` runs the very same object in-process.

/search: the query is parsed once (query understanding: the features use it, and it travels
to the strategies that act on it, `Retriever.uses_parse`); context features from this process's snapshot of the feedback shards' history
(`engine.history_feed`, refreshed in the background, so no remote call per request; the
first request waits up to HISTORY_TIMEOUT_S for a first copy), then the pipeline (plan,
fan out, union, rank, the entity cards of what the query names and the related entities of
the top results (logged with the request, so feedback can name them), answer, log after the
answer), and the items' display fields.

/feedback: events are stored only for a durable request. A request answered by this
process whose log write is still in flight is waited for; an id the shard does not know
yet is retried for UNKNOWN_GRACE_S (another replica's write may be on its way). So feedback
is acknowledged only when its request is stored, and never refused because its log is late.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.model import Item
from core.records import EventRecord, RequestRecord
from engine.batching import MicroBatcher
from engine.entities import EntityAnswer, EntityHit, EntityIndex
from engine.feedback_client import FeedbackClient
from engine.feedback_store import AddResult, UnknownRequest
from engine.history_feed import HistorySnapshot
from engine.pipeline import RankFn, RetrieveFn, SearchPipeline, SearchResult
from retrievers.index import IndexHandle
from rl.features import ContextFeaturizer
from rl.policy import Policy

log = logging.getLogger(__name__)
HISTORY_TIMEOUT_S = 0.25  # the first request of a process waits this long for its first history snapshot
UNKNOWN_GRACE_S = 0.5  # feedback naming a request the shard does not know yet is retried this long
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16), as the pipeline draws them
LOG_BATCH_MAX, LOG_BATCH_WAIT_S = 64, 0.005  # request logs written together: at most, and the longest wait
DISPLAY_FIELDS = 6
DISPLAY_CHARS = 200


@dataclass(frozen=True)
class ServiceTimings:
    """The service's time limits, in seconds (`deployments.config.AppArgs` documents each)."""

    strategy_s: float = 1.0
    ranker_s: float = 2.0
    cooldown_s: float = 5.0
    retry_after_s: float = 1.0
    history_refresh_s: float = 1.0


@dataclass
class Answer:
    """One /search answer before it is written as HTTP."""

    result: SearchResult
    display: dict[str, dict[str, str]]  # item id -> display fields, for the ranked items
    entities: list[EntityHit]  # cards for what the query names
    related: list[EntityHit]  # entities of the top results


class SearchService:
    """The request side of ltrr for one catalogue (see the module docstring)."""

    def __init__(self, retrievers: dict[str, RetrieveFn], rank: RankFn, feedback: FeedbackClient, policy: Policy,
                 index: IndexHandle, timings: ServiceTimings = ServiceTimings(), log_in_background: bool = True,
                 parse_for: frozenset[str] = frozenset(), lookahead: int = 0):
        self.catalog: Mapping[str, Item] = index.catalog_view()  # memory-mapped: shared through the page cache
        self.entity_index = EntityIndex(index.entities(self.catalog))
        self.featurizer = ContextFeaturizer.from_catalog(self.catalog.values(), index.schema)
        self.feedback = feedback
        self.timings = timings
        self.history = HistorySnapshot(feedback.n_shards)
        self._history_task: asyncio.Task | None = None
        # group commit: the log writes of concurrent requests go to the shards together (one
        # remote call and one fsync per shard per batch); each request still waits for its own
        self.log_batcher: MicroBatcher[RequestRecord, None] = MicroBatcher(
            feedback.log_requests, max_size=LOG_BATCH_MAX, wait_s=LOG_BATCH_WAIT_S)
        self.pipeline = SearchPipeline(retrievers, rank, self.log_batcher, policy, timings.strategy_s,
                                       timings.ranker_s, timings.cooldown_s, context_fn=self.features,
                                       retry_after_s=timings.retry_after_s, log_in_background=log_in_background,
                                       parse_for=parse_for, lookahead=lookahead)

    async def search(self, query: str, k: int, user_id: str | None = None, context: dict | None = None,
                     related: int = 5) -> Answer:
        """Serve one query (raises `engine.pipeline.Unavailable` when no strategy can answer)."""
        understanding = self.featurizer.understanding  # its parse cache serves the features' parse too
        parse = understanding.parse(query) if understanding is not None and self.pipeline.parse_for else None
        res = await self.pipeline.search(query, k, user_id, context, parse,
                                         entities=lambda shown: self._entities(query, shown, related))
        ents = res.entities or EntityAnswer()
        return Answer(res, {i: self.display(i) for i, _ in res.ranked}, ents.cards, ents.related)

    async def features(self, query: str, user_id: str | None, context: dict) -> np.ndarray:
        """The bandit's context features; the history comes from the local snapshot."""
        if self._history_task is None:
            self._history_task = asyncio.get_running_loop().create_task(self._refresh_forever())
        if not self.history.refreshes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.refresh_history(), HISTORY_TIMEOUT_S)
        ts = context.get("ts") if isinstance(context.get("ts"), (int, float)) else None
        return self.featurizer.featurize(query, self.history.history(user_id, query), ts)

    async def refresh_history(self) -> None:
        """Pull what changed in every shard's history since this snapshot's cursors."""
        for shard in range(self.feedback.n_shards):
            self.history.apply(shard, await self.feedback.history_delta(shard, *self.history.cursor(shard)))
        self.history.refreshes += 1

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.refresh_history(), 10)
            except Exception as exc:  # keep serving from the last copy; try again next round
                log.warning("context history refresh failed: %r", exc)
            await asyncio.sleep(self.timings.history_refresh_s)

    async def add_events(self, request_id: str, events: Sequence[EventRecord]) -> AddResult:
        """Store one request's events once the request is durable (raises UnknownRequest, BadEvent)."""
        with contextlib.suppress(Exception):  # a failed write: the shard does not know it, and says so
            await self.pipeline.logged(request_id)
        deadline = time.monotonic() + UNKNOWN_GRACE_S
        wait = 0.01
        while True:
            try:
                return await self.feedback.add_events(request_id, events)
            except UnknownRequest:
                if not REQUEST_ID.match(request_id) or time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)
                wait *= 2

    def display(self, item_id: str) -> dict[str, str]:
        """The first DISPLAY_FIELDS fields of an item (and its year), each cut to DISPLAY_CHARS."""
        item = self.catalog.get(item_id)
        if item is None:
            return {}
        fields = {k: v[:DISPLAY_CHARS] for k, v in list(item.fields.items())[:DISPLAY_FIELDS]}
        if item.year:
            fields["year"] = str(item.year)
        return fields

    def _entities(self, query: str, shown: list[str], limit: int) -> EntityAnswer:
        """Entity cards and related entities; a failure here never fails the search (logged, left out)."""
        try:
            return self.entity_index.answer(query, shown, limit)
        except Exception:
            log.exception("related entities failed for one request; answered without them")
            return EntityAnswer(shown=shown)

    async def close(self) -> None:
        """Stop the history refresh and wait for the log writes and shadow fetches in flight."""
        task = self._history_task
        while task is not None and not task.done():
            # cancel until it stops: Python 3.11's asyncio.wait_for swallows a cancel that arrives just as
            # its inner call finishes (it returns the result), and the refresh loop would then run on
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        await self.pipeline.drain()
