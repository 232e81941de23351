"""In-memory aggregates of one feedback shard, rebuilt from its log on every start.

`FeedbackShard` (engine/feedback_store.py) feeds every stored request and event here, in
log order, both live and on replay, so the numbers after a restart equal the numbers
before it. Everything returned is plain JSON-serialisable dicts and lists.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from core.credit import event_items
from core.events import EVENT_TYPES, POSITIVE_TYPES
from core.records import EventRecord, RequestRecord
from core.text import normalize
from rl.features import History, StrategyHistory

LAST_CLICKED = 20  # item ids kept per user for user_history


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the shard keeps of a logged request: enough to validate and attribute events."""

    query: str  # normalized query text
    user_id: str | None
    items: dict[str, tuple[str, ...]]  # candidate or shown item -> strategies that found it
    entities: dict[str, tuple[str, ...]] | None = None  # shown entity -> the result items it was shown through

    @classmethod
    def of(cls, rec: RequestRecord) -> RequestInfo:
        items = {c.item_id: tuple(sorted(c.hits)) for c in rec.served()}
        for item_id in rec.shown:
            items.setdefault(item_id, ())
        return cls(normalize(rec.query), rec.user_id, items, rec.entity_via() or None)

    def found_by(self, ev: EventRecord) -> tuple[str, ...]:
        """The strategies an event credits: those that found its item, or, for an entity event,
        any of the result items the entity was shown through (`core.credit`)."""
        items = event_items(ev, self.entities or {})
        if len(items) == 1:
            return self.items.get(items[0], ())
        return tuple(sorted({s for i in items for s in self.items.get(i, ())}))


def _zero_types() -> Counter:
    return Counter({t: 0 for t in EVENT_TYPES})


class FeedbackStats:
    """Counters per shard, per strategy, per user and per normalized query."""

    def __init__(self) -> None:
        self.requests = 0
        self.events = 0
        self.entity_events = 0  # events on shown entities (also in `events` and `by_type`)
        self.by_type = _zero_types()
        self.fetched: Counter = Counter()  # strategy -> candidates it contributed, summed over requests
        self.chosen: Counter = Counter()  # strategy -> requests whose plan gave it a budget > 0
        self.hits: Counter = Counter()  # strategy -> positive events on items it found
        self.user_events: dict[str, Counter] = {}
        self.user_requests: Counter = Counter()
        self.user_clicked: dict[str, deque] = {}
        self.query_clicks: Counter = Counter()
        # per-user and per-query strategy history, for the bandit's context features
        self.user_chosen: dict[str, Counter] = {}
        self.user_hits: dict[str, Counter] = {}
        self.query_requests: Counter = Counter()
        self.query_chosen: dict[str, Counter] = {}
        self.query_hits: dict[str, Counter] = {}
        self.query_events: Counter = Counter()  # positive events per query (the memory strategy learns from them)

    def add_request(self, rec: RequestRecord, info: RequestInfo) -> None:
        self.requests += 1
        for strategies in info.items.values():
            self.fetched.update(strategies)
        called = [s for s, budget in rec.plan.budgets.items() if budget > 0 and s not in rec.failed]
        self.chosen.update(called)
        if rec.user_id is not None:
            self.user_requests[rec.user_id] += 1
            self.user_chosen.setdefault(rec.user_id, Counter()).update(called)
        if info.query:
            self.query_requests[info.query] += 1
            self.query_chosen.setdefault(info.query, Counter()).update(called)

    def add_event(self, ev: EventRecord, info: RequestInfo) -> None:
        """Count one stored event. A positive event is a hit for every strategy it credits
        (`RequestInfo.found_by`); the memory's knowledge (`query_events`) and a user's last clicked
        items count item events only: an entity is no item the memory strategy could return."""
        on_item = ev.entity_id is None
        self.events += 1
        self.entity_events += not on_item
        self.by_type[ev.type] += 1
        if ev.type in POSITIVE_TYPES:
            found = info.found_by(ev)
            self.hits.update(found)
            if info.user_id is not None:
                self.user_hits.setdefault(info.user_id, Counter()).update(found)
            if info.query:
                self.query_hits.setdefault(info.query, Counter()).update(found)
                self.query_events[info.query] += on_item
        if ev.type == "click" and info.query:
            self.query_clicks[info.query] += 1
        user = info.user_id
        if user is not None:
            self.user_events.setdefault(user, _zero_types())[ev.type] += 1
            if ev.type == "click" and on_item:
                self.user_clicked.setdefault(user, deque(maxlen=LAST_CLICKED)).append(ev.item_id)

    def strategy_stats(self) -> dict[str, dict[str, int]]:
        """{strategy: {"fetched", "chosen", "hits"}} for every strategy seen so far."""
        names = sorted(set(self.fetched) | set(self.chosen) | set(self.hits))
        return {s: {"fetched": self.fetched[s], "chosen": self.chosen[s], "hits": self.hits[s]} for s in names}

    def user_history(self, user_id: str) -> dict:
        """Event counts by type, requests made, and the last clicked item ids (newest first)."""
        return {
            "user_id": user_id,
            "requests": self.user_requests.get(user_id, 0),
            "counts": dict(self.user_events.get(user_id, _zero_types())),
            "last_clicked": list(reversed(self.user_clicked.get(user_id, ()))),
        }

    def user_strategies(self, user_id: str) -> StrategyHistory:
        """One user's per-strategy history."""
        return StrategyHistory(self.user_requests.get(user_id, 0), dict(self.user_chosen.get(user_id, {})),
                               dict(self.user_hits.get(user_id, {})))

    def query_strategies(self, query: str) -> StrategyHistory:
        """One normalized query's per-strategy history."""
        return StrategyHistory(self.query_requests.get(query, 0), dict(self.query_chosen.get(query, {})),
                               dict(self.query_hits.get(query, {})), self.query_events.get(query, 0))

    def overall_strategies(self) -> StrategyHistory:
        return StrategyHistory(self.requests, dict(self.chosen), dict(self.hits))

    def context_history(self, user_id: str | None, query: str) -> History:
        """Per-strategy history for the bandit's context features: this user's, this query's
        (normalized here, as requests are) and all traffic's."""
        user = self.user_strategies(user_id) if user_id is not None else StrategyHistory()
        return History(user, self.query_strategies(normalize(query)), self.overall_strategies())

    def totals(self, shard: int | None = None, **extra: int) -> FeedbackTotals:
        return FeedbackTotals(
            shard=shard, requests=self.requests, events=self.events, entity_events=self.entity_events,
            events_by_type=dict(self.by_type),
            strategies={s: StrategyCounts(**c) for s, c in self.strategy_stats().items()},
            users={u: dict(c) for u, c in sorted(self.user_events.items())},
            query_clicks=dict(sorted(self.query_clicks.items())), **extra)


class StrategyCounts(BaseModel):
    """One strategy's running totals."""

    fetched: int = Field(0, description="candidates it contributed, summed over requests")
    chosen: int = Field(0, description="requests whose plan called it (and it answered)")
    hits: int = Field(0, description="positive events (click, play, like) on items it had found, or on entities "
                      "shown through such items")


class FeedbackTotals(BaseModel):
    """Aggregates of the feedback log: one shard's (`shard` set) or several shards' summed."""

    shards: int = Field(1, description="shards summed into these totals")
    shard: int | None = Field(None, description="the shard, for one shard's totals")
    requests: int = 0
    events: int = 0
    entity_events: int = Field(0, description="events on shown entities (cards, related entities); counted in "
                               "`events` and `events_by_type` too")
    events_by_type: dict[str, int] = Field(default_factory=dict)
    strategies: dict[str, StrategyCounts] = Field(default_factory=dict)
    users: dict[str, dict[str, int]] = Field(default_factory=dict, description="user -> events by type")
    query_clicks: dict[str, int] = Field(default_factory=dict, description="normalized query -> clicks")
    latest_seq: int = Field(0, description="the newest memory-update sequence number (one shard)")
    memory_updates: int = Field(0, description="memory updates (events that move query -> item scores)")

    @classmethod
    def merge(cls, parts: Iterable[FeedbackTotals]) -> FeedbackTotals:
        """Sum several shards' totals (counts add up key by key)."""
        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}
        parts = list(parts)
        out = cls(shards=len(parts))
        for p in parts:
            out.requests += p.requests
            out.events += p.events
            out.entity_events += p.entity_events
            out.memory_updates += p.memory_updates
            out.events_by_type = add(out.events_by_type, p.events_by_type)
            out.query_clicks = add(out.query_clicks, p.query_clicks)
            for u, c in p.users.items():
                out.users[u] = add(out.users.get(u, {}), c)
            for s, c in p.strategies.items():
                o = out.strategies.setdefault(s, StrategyCounts())
                o.fetched, o.chosen, o.hits = o.fetched + c.fetched, o.chosen + c.chosen, o.hits + c.hits
        out.users = dict(sorted(out.users.items()))
        out.strategies = dict(sorted(out.strategies.items()))
        return out
