"""In-memory aggregates of one feedback shard, rebuilt from its log on every start.

`FeedbackShard` (ltrr/feedback_store.py) feeds every stored request and event here, in
log order, both live and on replay, so the numbers after a restart equal the numbers
before it. Everything returned is plain JSON-serialisable dicts and lists.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from ltrr.records import EVENT_TYPES, EventRecord, RequestRecord
from retrievers.text import normalize

# Event types that mean "the user wanted this item": they count as hits for the
# strategies that found the item, and as clicked items in a user's history.
POSITIVE_TYPES: frozenset[str] = frozenset({"click", "play", "like"})
LAST_CLICKED = 20  # item ids kept per user for user_history


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the shard keeps of a logged request: enough to validate and attribute events."""

    query: str  # normalized query text
    user_id: str | None
    items: dict[str, tuple[str, ...]]  # candidate or shown item -> strategies that found it

    @classmethod
    def of(cls, rec: RequestRecord) -> RequestInfo:
        items = {c.item_id: tuple(sorted(c.hits)) for c in rec.candidates}
        for item_id in rec.shown:
            items.setdefault(item_id, ())
        return cls(normalize(rec.query), rec.user_id, items)


def _zero_types() -> Counter:
    return Counter({t: 0 for t in EVENT_TYPES})


class FeedbackStats:
    """Counters per shard, per strategy, per user and per normalized query."""

    def __init__(self) -> None:
        self.requests = 0
        self.events = 0
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
        self.events += 1
        self.by_type[ev.type] += 1
        if ev.type in POSITIVE_TYPES:
            found = info.items.get(ev.item_id, ())
            self.hits.update(found)
            if info.user_id is not None:
                self.user_hits.setdefault(info.user_id, Counter()).update(found)
            if info.query:
                self.query_hits.setdefault(info.query, Counter()).update(found)
                self.query_events[info.query] += 1
        if ev.type == "click" and info.query:
            self.query_clicks[info.query] += 1
        user = info.user_id
        if user is not None:
            self.user_events.setdefault(user, _zero_types())[ev.type] += 1
            if ev.type == "click":
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

    def context_history(self, user_id: str | None, query: str) -> dict:
        """Per-strategy history for the bandit's context (`rl.features.History.from_json`):
        {"user"|"query"|"overall": {"requests", "chosen": {strategy: n}, "hits": {strategy: n}}}.
        `query` is normalized here, as requests are."""
        q = normalize(query)
        user = {"requests": self.user_requests.get(user_id, 0), "chosen": dict(self.user_chosen.get(user_id, {})),
                "hits": dict(self.user_hits.get(user_id, {}))} if user_id is not None else {}
        return {"user": user,
                "query": {"requests": self.query_requests.get(q, 0), "events": self.query_events.get(q, 0),
                          "chosen": dict(self.query_chosen.get(q, {})),
                          "hits": dict(self.query_hits.get(q, {}))},
                "overall": {"requests": self.requests, "chosen": dict(self.chosen), "hits": dict(self.hits)}}

    def snapshot(self) -> dict:
        return {
            "requests": self.requests,
            "events": self.events,
            "events_by_type": dict(self.by_type),
            "strategies": self.strategy_stats(),
            "users": {u: dict(c) for u, c in sorted(self.user_events.items())},
            "query_clicks": dict(sorted(self.query_clicks.items())),
        }
