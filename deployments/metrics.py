"""Prometheus metrics of the serve and feedback paths, through Ray's metrics agent.

Ray exports application metrics (`ray.util.metrics`) with the node's system metrics on
each node's Prometheus endpoint (`ray start --metrics-export-port`; `ltrr up` uses
`core.paths.METRICS_PORT`), with a `ray_` prefix:

- `ray_ltrr_strategy_chosen_total{strategy}`: requests whose plan called the strategy;
- `ray_ltrr_strategy_fetched_total{strategy}`: candidates it returned;
- `ray_ltrr_strategy_hits_total{strategy}`: positive events (click, play, like) on items
  it had retrieved;
- `ray_ltrr_strategy_latency_ms{strategy}`: call latency histogram (ms);
- `ray_ltrr_strategy_failures_total{strategy}`: calls that failed or timed out;
- `ray_ltrr_serving_versions{policy, ranker}`: 1 for the versions serving now;
- `ray_ltrr_feedback_events_stored_total{type}`: events stored (fsynced) by the actors.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ray.util.metrics import Counter, Gauge, Histogram

log = logging.getLogger("ray.serve")
LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]


class ServeMetrics:
    """Created once per orchestrator replica.

    `record` only adds to local tallies (a few dict updates per request); `flush` hands
    them to Ray's metrics API, which costs tens of microseconds per call: calling it per
    strategy per request was a visible share of the orchestrator's CPU. The orchestrator
    flushes every FLUSH_S seconds, far more often than Prometheus scrapes."""

    FLUSH_S = 1.0

    def __init__(self) -> None:
        tag = ("strategy",)
        self.chosen = Counter("ltrr_strategy_chosen", "requests whose plan called the strategy", tag_keys=tag)
        self.fetched = Counter("ltrr_strategy_fetched", "candidates the strategy returned", tag_keys=tag)
        self.failures = Counter("ltrr_strategy_failures", "strategy calls that failed or timed out", tag_keys=tag)
        self.latency = Histogram("ltrr_strategy_latency_ms", "strategy call latency (ms)",
                                 boundaries=LATENCY_BOUNDARIES_MS, tag_keys=tag)
        self.versions = Gauge("ltrr_serving_versions", "1 for the policy and ranker versions serving now",
                              tag_keys=("policy", "ranker"))
        self._last_versions: tuple[str, str] | None = None
        self._chosen: dict[str, int] = {}
        self._fetched: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._latency: dict[str, list[float]] = {}
        self._versions: tuple[str, str] | None = None

    def record(self, budgets: Mapping[str, int], fetched: Mapping[str, int], latency_ms: Mapping[str, float],
               failed: list[str], policy: str, ranker: str) -> None:
        """Tally one request (see the class docstring)."""
        for s, b in budgets.items():
            if b > 0:
                self._chosen[s] = self._chosen.get(s, 0) + 1
        for s, n in fetched.items():
            if n:
                self._fetched[s] = self._fetched.get(s, 0) + n
        for s, ms in latency_ms.items():
            self._latency.setdefault(s, []).append(ms)
        for s in failed:
            if s != "ranker":
                self._failures[s] = self._failures.get(s, 0) + 1
        self._versions = (policy, ranker)

    def flush(self) -> None:
        """Hand the tallies since the last flush to Ray's metrics."""
        chosen, fetched, failures, latency = self._chosen, self._fetched, self._failures, self._latency
        self._chosen, self._fetched, self._failures, self._latency = {}, {}, {}, {}
        for counter, tally in ((self.chosen, chosen), (self.fetched, fetched), (self.failures, failures)):
            for s, n in tally.items():
                counter.inc(n, tags={"strategy": s})
        for s, values in latency.items():
            for ms in values:
                self.latency.observe(ms, tags={"strategy": s})
        if self._versions is not None:
            if self._last_versions is not None and self._versions != self._last_versions:
                old_p, old_r = self._last_versions
                self.versions.set(0, tags={"policy": old_p, "ranker": old_r})
            # set on every flush, not only on a change: Ray exports a gauge's values recorded
            # since its last export, so one set long ago vanished from /metrics (seen with
            # RAY_metrics_report_interval_ms=2000: missing for 120 s after the first request)
            policy, ranker = self._versions
            self.versions.set(1, tags={"policy": policy, "ranker": ranker})
            self._last_versions = self._versions

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_S)
            try:
                self.flush()
            except Exception as exc:  # metrics must never take the service down
                log.warning("metrics flush failed: %r", exc)


class FeedbackMetrics:
    """Created once per feedback actor."""

    def __init__(self) -> None:
        self.stored = Counter("ltrr_feedback_events_stored", "feedback events stored (fsynced)", tag_keys=("type",))
        self.hits = Counter("ltrr_strategy_hits", "positive events on items the strategy retrieved",
                            tag_keys=("strategy",))

    def record(self, types: Mapping[str, int], hits: Mapping[str, int]) -> None:
        for t, n in types.items():
            if n:
                self.stored.inc(n, tags={"type": t})
        for s, n in hits.items():
            if n:
                self.hits.inc(n, tags={"strategy": s})
