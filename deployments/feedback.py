"""Feedback actors: named, sharded Ray actors that store request logs and feedback
events durably (fsync before they answer) and aggregate them.

Each actor wraps one `ltrr.feedback_store.FeedbackShard`. Requests are routed to shard
`shard_of(request_id)`, so a request's log and its feedback meet in one shard, which
can refuse feedback for unknown request ids. The actors restart on failure
(`max_restarts=-1`) and rebuild their state from their files; calls made while one
restarts are retried (`max_task_retries=-1`), so no acknowledged event is lost and no
caller sees the restart. They are detached: they outlive app redeploys.
"""
from __future__ import annotations

from pathlib import Path

import ray

from deployments.metrics import FeedbackMetrics
from ltrr.feedback_store import FeedbackShard, shard_of
from ltrr.records import EventRecord, RequestRecord

NAMESPACE = "ltrr"


def actor_name(shard: int) -> str:
    return f"ltrr-feedback-{shard}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1)
class FeedbackActor:
    """One durable shard. Methods take and return plain JSON-able values."""

    def __init__(self, directory: str, shard: int):
        self.store = FeedbackShard(Path(directory), shard)
        self.metrics = FeedbackMetrics()

    def log_request(self, record_json: str) -> None:
        self.store.log_request(RequestRecord.model_validate_json(record_json))

    def add_events(self, request_id: str, events_json: list[str]) -> dict:
        events = [EventRecord.model_validate_json(e) for e in events_json]
        before = self.store.counters()  # one call at a time (max_concurrency=1): the delta is this call's
        res = self.store.add_events(request_id, events)
        after = self.store.counters()
        self.metrics.record({t: n - before["events_by_type"].get(t, 0) for t, n in after["events_by_type"].items()},
                            {s: n - before["hits"].get(s, 0) for s, n in after["hits"].items()})
        return {"accepted": res.accepted, "duplicates": res.duplicates, "stored_total": res.stored_total}

    def stats(self) -> dict:
        return self.store.stats()

    def memory_updates(self, since: int, limit: int = 10000) -> tuple[list, int]:
        return self.store.memory_updates(since, limit)

    def user_history(self, user_id: str) -> dict:
        return self.store.user_history(user_id)

    def context_history(self, user_id: str | None, query: str) -> dict:
        return self.store.context_history(user_id, query)

    def export(self, out_dir: str) -> dict:
        return self.store.export(Path(out_dir))


def get_shards(directory: str | Path, n_shards: int) -> list:
    """The n feedback actors, created on first use (idempotent across callers)."""
    return [FeedbackActor.options(name=actor_name(i), namespace=NAMESPACE, lifetime="detached",
                                  get_if_exists=True).remote(str(directory), i)
            for i in range(n_shards)]


def lookup_shards(n_shards: int) -> list:
    """Handles to running feedback actors (for CLIs and jobs); ValueError if one is missing."""
    return [ray.get_actor(actor_name(i), namespace=NAMESPACE) for i in range(n_shards)]


def route(shards: list, request_id: str):
    return shards[shard_of(request_id, len(shards))]


def merge_stats(per_shard: list[dict]) -> dict:
    """Sum the shards' aggregates: numbers add up, nested dicts merge key by key."""
    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            if isinstance(value, dict):
                out[key] = merge(out.get(key, {}), value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
            else:
                out.setdefault(key, value)
        return out

    total: dict = {}
    for stats in per_shard:
        total = merge(total, {k: v for k, v in stats.items() if k not in ("shard", "latest_seq")})
    total["shards"] = len(per_shard)
    return total
