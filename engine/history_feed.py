"""Context history, replicated: each feedback shard publishes what changed, and every
orchestrator replica keeps a local copy that it refreshes in the background.

Why: the bandit's context features need the user's, the query's and all traffic's
per-strategy history (`rl.features.History`). Asking every feedback shard on every
request cost one remote call per shard on the hot path (and a 250 ms timeout when a
shard was busy). Instead a shard's `HistoryFeed` numbers its changes, and a
`HistorySnapshot` pulls the rows that changed since its cursor every
`history_refresh_s`: /search reads the snapshot with no remote call, at most one refresh
interval behind the shards. What the request saw is logged in its record's `features`,
so training sees exactly what serving used.

A delta names the feed's `instance`, a token drawn when the shard (re)builds its state
(a restart, an erasure); a snapshot whose instance differs asks for everything again,
so it never keeps rows that a rebuilt shard no longer has (an erased user's).
"""
from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from core.text import normalize
from engine.feedback_stats import FeedbackStats
from rl.features import History, StrategyHistory

USER, QUERY = "u", "q"


@dataclass(frozen=True)
class HistoryDelta:
    """The rows of one shard's history that changed after a cursor (all of them if `full`)."""

    instance: str
    version: int
    full: bool
    users: dict[str, StrategyHistory] = field(default_factory=dict)
    queries: dict[str, StrategyHistory] = field(default_factory=dict)
    overall: StrategyHistory = field(default_factory=StrategyHistory)


class HistoryFeed:
    """A shard's change log of history keys: each touched user or query gets the next
    version, and `delta(instance, since)` returns the rows touched after `since`. Keys are
    kept in touch order (an OrderedDict, moved to the end when touched again), so a delta
    walks only the changed keys, newest first, and stops at the cursor."""

    def __init__(self) -> None:
        self.instance = secrets.token_hex(8)
        self.version = 0
        self._touched: OrderedDict[tuple[str, str], int] = OrderedDict()

    def touch(self, user_id: str | None, query: str) -> None:
        """Mark a user and a (normalized) query as changed; call after the stats took the change."""
        self.version += 1
        for key in ((USER, user_id) if user_id is not None else None, (QUERY, query) if query else None):
            if key is not None:
                self._touched[key] = self.version
                self._touched.move_to_end(key)

    def delta(self, stats: FeedbackStats, instance: str | None, since: int) -> HistoryDelta:
        """What changed after version `since` of `instance`; everything if the instance differs."""
        if instance != self.instance or since > self.version:
            return HistoryDelta(self.instance, self.version, True,
                                {u: stats.user_strategies(u) for u in stats.user_requests},
                                {q: stats.query_strategies(q) for q in stats.query_requests},
                                stats.overall_strategies())
        users: dict[str, StrategyHistory] = {}
        queries: dict[str, StrategyHistory] = {}
        for (kind, key), version in reversed(self._touched.items()):
            if version <= since:
                break
            if kind == USER:
                users[key] = stats.user_strategies(key)
            else:
                queries[key] = stats.query_strategies(key)
        return HistoryDelta(self.instance, self.version, False, users, queries, stats.overall_strategies())


class HistorySnapshot:
    """An orchestrator replica's copy of every shard's history (see the module docstring)."""

    def __init__(self, n_shards: int) -> None:
        self.n_shards = n_shards
        self.instances: list[str | None] = [None] * n_shards
        self.versions = [0] * n_shards
        self.users: list[dict[str, StrategyHistory]] = [{} for _ in range(n_shards)]
        self.queries: list[dict[str, StrategyHistory]] = [{} for _ in range(n_shards)]
        self.overall = [StrategyHistory() for _ in range(n_shards)]
        self.refreshes = 0  # completed refresh rounds (every shard answered)

    def cursor(self, shard: int) -> tuple[str | None, int]:
        return self.instances[shard], self.versions[shard]

    def apply(self, shard: int, delta: HistoryDelta) -> None:
        if delta.full:
            self.users[shard], self.queries[shard] = dict(delta.users), dict(delta.queries)
        else:
            self.users[shard].update(delta.users)
            self.queries[shard].update(delta.queries)
        self.overall[shard] = delta.overall
        self.instances[shard], self.versions[shard] = delta.instance, delta.version

    def history(self, user_id: str | None, query: str) -> History:
        """The history summed over shards, as `FeedbackClient.history` would answer it."""
        q = normalize(query)
        empty = StrategyHistory()
        return History.merge(
            History(self.users[i].get(user_id, empty) if user_id is not None else empty,
                    self.queries[i].get(q, empty), self.overall[i])
            for i in range(self.n_shards))
