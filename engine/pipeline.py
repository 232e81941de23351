"""The search pipeline, free of Ray: plan, fan out, union, rank, log.

The orchestrator deployment runs it with DeploymentHandle calls; the latency benchmark
and tests run the very same code with in-process callables. Each strategy call has its
own timeout; a failed or slow strategy (or ranker) degrades the answer instead of
failing it, and a circuit breaker skips a strategy for a few seconds after it failed.
A strategy that refuses a call because its queue is full (`Overloaded`: load shedding
downstream) is left out of that answer without opening its breaker. When no strategy
answers at all, the request cannot be served: `search` raises `Unavailable`, which the
HTTP layer answers with 503 and Retry-After, and nothing is logged.

Logging: by default `search` awaits the log write before it answers. With
`log_in_background` (the service) the write runs as a task after the answer, so the user
never waits on a second round trip; `logged(request_id)` awaits a write still in flight,
and the HTTP layer calls it before storing feedback that names the request, so feedback
is only acknowledged for a request that is durable. A write that fails is logged and
counted in `log_failures` (the answer was already given).

Off-path shadow exploration: for a plan flagged `shadow`, the user gets the plan's own
answer, logged durably as usual; only after that, a background task fetches every other
available strategy (and those the plan called below the top budget) at the top budget and
logs the request again, completed: all candidates with provenance, `fetched` depths and
the shadow calls' latencies (`engine.feedback_store` keeps the completion in place of the
first record). Exploration then costs compute, never what the user was shown.

Lookahead (`lookahead=B`): every called strategy is fetched at least B deep, the user is
served the plan's own prefix (a strategy's top b is a prefix of its top B: the ranker sees
exactly the plan's union), and the request is logged with all B and `fetched` depths. Every
deeper plan over the strategies a request called is then exact in its log (`rl.reward`),
not only on shadow requests. It costs the deeper calls' compute (`SearchResult.depth` says
what was paid) and the log's size. Off by default (`rl.serving.PolicyArgs.lookahead`):
measured on the bench's drift streams, exact lists alone do not let the gate tell deeper
plans apart, since nobody clicked what nobody was shown (README, stop 28).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.records import Candidate, PlanRecord, RequestRecord
from engine.entities import EntityAnswer
from engine.sharding import shard_label
from ranking.fusion import union
from retrievers.base import Query
from retrievers.understanding import Parse
from rl.policy import LEVELS, Plan, Policy, PolicyContext

RetrieveFn = Callable[[Query, int], Awaitable[list[Candidate]]]
RankFn = Callable[[str, list[Candidate]], Awaitable[tuple[str, list[tuple[str, float]]]]]
LogFn = Callable[[RequestRecord], Awaitable[None]]  # a coroutine function, or a batcher returning futures
ContextFn = Callable[[str, str | None, dict], Awaitable[np.ndarray]]
EntitiesFn = Callable[[list[str]], EntityAnswer]  # the shown item ids -> the entities shown beside them
log = logging.getLogger(__name__)


async def no_features(query: str, user_id: str | None, context: dict) -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


class Overloaded(Exception):
    """A strategy refused the call because its queue is full; retry after `retry_after_s`."""

    def __init__(self, message: str = "overloaded", retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """No strategy answered this request (all overloaded, failed, or skipped by their breakers)."""

    def __init__(self, reason: str, retry_after_s: float):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Breaker:
    """Per-strategy circuit breaker: after a failure, skip the strategy for `cooldown_s`."""

    def __init__(self, cooldown_s: float):
        self.cooldown_s = cooldown_s
        self.open_until: dict[str, float] = {}

    def available(self, names: list[str]) -> list[str]:
        return [n for n in names if not self.is_open(n)]

    def fail(self, name: str) -> None:
        self.open_until[name] = time.monotonic() + self.cooldown_s

    def is_open(self, name: str) -> bool:
        return self.open_until.get(name, 0.0) > time.monotonic()

    def seconds_to_first_close(self, names: list[str]) -> float:
        """Seconds until the first of `names` whose circuit is open may be called again (0 if none)."""
        now = time.monotonic()
        waits = [self.open_until.get(n, 0.0) - now for n in names if self.is_open(n)]
        return max(0.0, min(waits)) if waits else 0.0


@dataclass
class SearchResult:
    request_id: str
    plan: Plan
    ranked: list[tuple[str, float]]
    candidates: list[Candidate]
    failed: list[str]
    ranker_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # strategy -> call latency
    depth: Mapping[str, int] = field(default_factory=dict)  # strategy -> the depth it was called at (>= its budget)
    shadow_task: asyncio.Task | None = None  # the off-path shadow fetch and log (shadow plans only)
    entities: EntityAnswer | None = None  # what `search(entities=...)` showed beside the results (and logged)

    @property
    def found_by(self) -> dict[str, list[str]]:
        return {c.item_id: sorted(c.hits) for c in self.candidates}

    @property
    def fetched(self) -> dict[str, int]:
        """Candidates each strategy contributed to the union."""
        out: dict[str, int] = {}
        for c in self.candidates:
            for s in c.hits:
                out[s] = out.get(s, 0) + 1
        return out


class SearchPipeline:
    def __init__(self, retrievers: dict[str, RetrieveFn], rank: RankFn, log: LogFn, policy: Policy,
                 strategy_timeout_s: float = 1.0, ranker_timeout_s: float = 2.0, cooldown_s: float = 5.0,
                 context_fn: ContextFn = no_features, retry_after_s: float = 1.0, top_budget: int = max(LEVELS),
                 log_in_background: bool = False, parse_for: frozenset[str] = frozenset(), lookahead: int = 0):
        self.retrievers = retrievers
        self.lookahead = lookahead  # fetch every called strategy at least this deep (module docstring)
        self.parse_for = parse_for  # strategies that get the request's query-understanding parse
        self.log_in_background = log_in_background
        self.pending_logs: dict[str, asyncio.Task] = {}  # request_id -> its log write, while in flight
        self.log_failures = 0
        self.top_budget = top_budget
        self.background: set[asyncio.Task] = set()  # running shadow fetches (kept referenced until done)
        self.retry_after_s = retry_after_s
        self.context_fn = context_fn
        self.rank_fn = rank
        self.log_fn = log
        self.policy = policy
        self.strategy_timeout_s = strategy_timeout_s
        self.ranker_timeout_s = ranker_timeout_s
        self.breaker = Breaker(cooldown_s)

    async def _call(self, name: str, query: Query, budget: int
                    ) -> tuple[str, list[Candidate] | None, float, Overloaded | None]:
        start = time.perf_counter()
        overloaded = None
        cands: list[Candidate] | None
        try:
            cands = await asyncio.wait_for(self.retrievers[name](query, budget), self.strategy_timeout_s)
        except Overloaded as exc:  # its queue is full: leave it out of this answer, keep calling it
            overloaded, cands = exc, None
        except Exception:  # timeout, dead replica, strategy error: degrade, never fail the request
            self.breaker.fail(name)
            cands = None
        return name, cands, (time.perf_counter() - start) * 1000, overloaded

    def _unavailable(self, planned: list[str], overloaded: list[Overloaded]) -> Unavailable:
        if overloaded:
            waits = [o.retry_after_s for o in overloaded if o.retry_after_s is not None]
            return Unavailable("overloaded: the strategies this request needed are at capacity or failed "
                               f"({', '.join(planned)})", max(waits, default=self.retry_after_s))
        if planned:
            return Unavailable(f"no strategy answered ({', '.join(planned)} failed)", self.retry_after_s)
        wait = self.breaker.seconds_to_first_close(list(self.retrievers))
        return Unavailable("every strategy failed recently and is paused (circuit open)", max(wait, 1.0))

    async def search(self, query: str, k: int, user_id: str | None = None,
                     context: dict[str, Any] | None = None, parse: Parse | None = None,
                     entities: EntitiesFn | None = None) -> SearchResult:
        """Serve one query. `parse`, the query understanding made upstream, travels only to the
        strategies in `parse_for` (the others get the plain query: less to send). `entities`, given
        the shown item ids, says which entities are shown beside them: they are logged with the
        request (so feedback can name them) and returned."""
        context = context or {}
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        request_id = secrets.token_urlsafe(16)
        available = self.breaker.available(list(self.retrievers))
        features = await self.context_fn(query, user_id, context)
        timings["features"] = (time.perf_counter() - t0) * 1000
        plan = self.policy.plan(PolicyContext(features=features, available=available))
        timings["plan"] = (time.perf_counter() - t0) * 1000

        t1 = time.perf_counter()
        q = Query(text=query, user_id=user_id, context=context, parse=parse)
        depth = ({s: max(b, self.lookahead) for s, b in plan.budgets.items() if b > 0} if self.lookahead
                 else plan.budgets)  # how deep each strategy is called
        fetched, failed, overloaded, latency = await self._fetch(q, depth, timings)
        timings["retrieve"] = (time.perf_counter() - t1) * 1000
        if not fetched:  # nothing to rank or show: an empty 200 would hide the outage
            raise self._unavailable(failed, overloaded)
        deeper = bool(self.lookahead) and any(depth[s] > plan.budgets[s] for s in fetched)
        results = ({s: [c for c in cands if c.rank <= plan.budgets[s]] for s, cands in fetched.items()}
                   if deeper else fetched)  # the plan's prefix of each list: what the user is served
        candidates = union(results)

        t2 = time.perf_counter()
        ranker_version, ranked = "none", []
        if candidates:
            try:
                ranker_version, ranked = await asyncio.wait_for(self.rank_fn(query, candidates),
                                                                self.ranker_timeout_s)
            except Exception:  # serve the fused order rather than fail
                failed.append("ranker")
                ranker_version = "fused-order"
                ranked = [(c.item_id, float(len(candidates) - i)) for i, c in enumerate(candidates)]
        timings["rank"] = (time.perf_counter() - t2) * 1000

        shown = ranked[:k]
        shown_entities = entities([i for i, _ in shown]) if entities is not None else None
        t3 = time.perf_counter()
        record = RequestRecord(
            request_id=request_id, ts=time.time(), query=query, user_id=user_id, context=context,
            features=[float(x) for x in features], latency_ms=latency,
            plan=PlanRecord(budgets=plan.budgets, propensity=plan.propensity, policy_version=plan.policy_version,
                            shadow=plan.shadow),
            failed=failed, candidates=union(fetched) if deeper else candidates, shown=[i for i, _ in shown],
            ranker_version=ranker_version, rank_ms=round(timings["rank"], 3),
            fetched={s: depth[s] for s in fetched} if deeper else {},  # deeper: the lists go past the plan
            entities=shown_entities.logged() if shown_entities else [])
        if self.log_in_background:
            self._log_later(record)
        else:
            await self.log_fn(record)
        task = None
        if plan.shadow:
            task = asyncio.create_task(self._shadow(record, q, fetched, available))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        timings["log"] = (time.perf_counter() - t3) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return SearchResult(request_id=request_id, plan=plan, ranked=shown, candidates=candidates, failed=failed,
                            ranker_version=ranker_version, timings_ms={k: round(v, 3) for k, v in timings.items()},
                            latency_ms=latency, depth=depth, shadow_task=task,
                            entities=shown_entities)

    def _log_later(self, record: RequestRecord) -> None:
        rid = record.request_id
        task = asyncio.ensure_future(self.log_fn(record))  # a coroutine, or a batcher's future
        self.pending_logs[rid] = task

        def done(t: asyncio.Task) -> None:
            self.pending_logs.pop(rid, None)
            if not t.cancelled() and t.exception() is not None:
                self.log_failures += 1
                log.error("request %s was answered but its log write failed: %r", rid, t.exception())
        task.add_done_callback(done)

    async def logged(self, request_id: str) -> None:
        """Wait for this request's log write if it is still in flight here (raises if it failed)."""
        task = self.pending_logs.get(request_id)
        if task is not None:
            await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for every log write and shadow fetch in flight (shutdown, tests)."""
        await asyncio.gather(*self.pending_logs.values(), *self.background, return_exceptions=True)

    async def _fetch(self, q: Query, budgets: dict[str, int], timings: dict[str, float] | None = None
                     ) -> tuple[dict[str, list[Candidate]], list[str], list[Overloaded], dict[str, float]]:
        """Call every strategy with a budget > 0 concurrently: (results, failed, overloaded, latency)."""
        results: dict[str, list[Candidate]] = {}
        failed: list[str] = []
        overloaded: list[Overloaded] = []
        latency: dict[str, float] = {}
        plain = Query(q.text, q.user_id, q.context) if q.parse is not None else q
        calls = [self._call(s, q if s in self.parse_for else plain, b) for s, b in budgets.items() if b > 0]
        for name, cands, ms, over in await asyncio.gather(*calls):
            if timings is not None:
                timings[f"retrieve:{name}"] = ms
            latency[name] = round(ms, 3)
            if over is not None:
                overloaded.append(over)
            if cands is None:
                failed.append(name)
            else:
                results[name] = cands
                # a sharded strategy that lost some shards answered from the others: degraded, named per shard
                failed.extend(shard_label(name, i) for i in getattr(cands, "missing", ()))
        return results, failed, overloaded, latency

    async def _shadow(self, record: RequestRecord, q: Query, served: dict[str, list[Candidate]],
                      available: list[str]) -> RequestRecord:
        """After the response: fetch the available strategies the request did not fetch at the top
        budget, at the top budget, and log the completed request (see the module docstring).
        `served`: what the response's calls returned (strategy -> list, as deep as they were called)."""
        await self.logged(record.request_id)  # the completion follows the first record
        top = self.top_budget
        depth = record.depth
        extra = {s: top for s in available if depth.get(s, 0) < top and s not in record.failed}
        results, _, _, latency = await self._fetch(q, extra)
        merged = {**served, **results}  # a strategy's top-b is a prefix of its top-B: B's list has every hit
        fetched = {s: (top if s in results else depth.get(s, 0)) for s in merged}
        done = record.model_copy(update={"candidates": union(merged), "fetched": fetched,
                                         "shadow_latency_ms": latency})
        await self.log_fn(done)
        return done
