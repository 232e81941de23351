"""ltrr as the bench runs it: the service's own pipeline, feedback store, policy and retrain
code, with in-process callables in place of Serve deployments.

`BenchService` holds a real `engine.pipeline.SearchPipeline` whose strategies answer from
the bench's `World` (the cached fan-out cut to the budget asked, and the live memory), whose
ranker is the workload's XGBoost model, whose log is a real durable feedback store
(`engine.feedback_client.LocalFeedback`), and whose policy is built by `rl.serving` exactly
as the orchestrator builds it. Retraining calls `learning.retrain.retrain_bandit`, the
function the service's Ray Job runs, and promotion swaps the pipeline's policy as the
orchestrator's `reconfigure` does. The only difference from the service is the cost model:
in-process calls to a cache take no time, so the bench prices plans with the latencies it
measured on the real strategies (`ltrr.bench.workload.measure_costs`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.paths import ModelKind, StatePaths
from core.records import Candidate, EventRecord, RequestRecord
from engine.feedback_client import LocalFeedback
from engine.pipeline import SearchPipeline, SearchResult
from learning.retrain import SupportCache, retrain_bandit
from ltrr.bench.workload import Workload, ranked
from ltrr.bench.world import World
from retrievers import STRATEGIES, Query
from rl.features import ContextFeaturizer
from rl.policy import LEVELS
from rl.serving import PolicyArgs, build_policy
from rl.train import PPOConfig


class _Promoter:
    def __init__(self, service: BenchService):
        self.service = service

    def current(self, kind: ModelKind) -> str:
        return self.service.version if kind == "bandit" else "bench-ranker"

    def promote(self, kind: ModelKind, version: str) -> None:
        if kind == "bandit":
            self.service.serve(version)


class BenchService:
    """One ltrr instance on the bench (see the module docstring)."""

    def __init__(self, wl: Workload, world: World, work_dir: Path, args: PolicyArgs, ppo: PPOConfig):
        shutil.rmtree(work_dir, ignore_errors=True)
        self.wl, self.world, self.args, self.ppo = wl, world, args, ppo
        self.paths = StatePaths(work_dir)
        self.feedback = LocalFeedback(self.paths.feedback, 1)
        self.featurizer = ContextFeaturizer.from_catalog(wl.catalog.values(), wl.index.schema)
        self.records: dict[str, RequestRecord] = {}  # request_id -> latest record (shadow completions replace)
        self.events: dict[str, list[EventRecord]] = {}
        self.version = "fixed"
        self.retrains: list[dict[str, Any]] = []
        self.support_cache: SupportCache = {}  # per-support ranker scores, shared by every retrain (learning.retrain)
        self.pipeline = SearchPipeline({s: self._strategy(s) for s in STRATEGIES}, self._rank, self._log,
                                       build_policy(args, list(STRATEGIES), "fixed", self.paths.bandit_models),
                                       strategy_timeout_s=30.0, ranker_timeout_s=30.0, cooldown_s=0.5,
                                       context_fn=self._features, lookahead=max(LEVELS) if args.lookahead else 0)

    def _strategy(self, name: str):
        async def call(query: Query, k: int) -> list[Candidate]:
            if name in self.world.down():
                raise RuntimeError(f"{name} is down")
            return [Candidate(c.item_id, {name: c.hits[name]}) for c in self.world.full(query.text)
                    if name in c.hits and c.hits[name].rank <= k]
        return call

    async def _rank(self, query: str, cands: list[Candidate]) -> tuple[str, list[tuple[str, float]]]:
        order, _ = ranked(self.wl, query, cands)
        return self.wl.ranker.version, [(i, float(len(order) - n)) for n, i in enumerate(order)]

    async def _log(self, rec: RequestRecord) -> None:
        await self.feedback.log_request(rec)
        self.records[rec.request_id] = rec

    async def _features(self, query: str, user_id: str | None, context: dict):
        return self.featurizer.featurize(query, await self.feedback.history(user_id, query), context.get("ts"))

    def serve(self, version: str) -> None:
        """Swap the serving policy (what the orchestrator's reconfigure does)."""
        self.pipeline.policy = build_policy(self.args, list(STRATEGIES), version, self.paths.bandit_models)
        self.version = version

    async def search(self, text: str, user: str, ts: float) -> SearchResult:
        res = await self.pipeline.search(text, 10, user, {"ts": ts})
        if res.shadow_task is not None:
            await res.shadow_task  # off the user's path; awaited here only to keep the bench sequential
        return res

    async def act(self, request_id: str, events: list[EventRecord]) -> None:
        """The user's events on a request, to the feedback store (as /feedback does)."""
        if events:
            await self.feedback.add_events(request_id, events)
            self.events.setdefault(request_id, []).extend(events)

    def retrain(self, at: int, tolerance: float = 0.0) -> dict[str, Any]:
        """The service's retrain job on everything logged so far."""
        record = retrain_bandit(self.paths, self.args, list(STRATEGIES), list(self.records.values()), self.events,
                                tolerance, _Promoter(self), ppo=self.ppo, version=f"bandit-{at:06d}",
                                cost=self.world.cost, ranker=self.wl.ranker, catalog=self.wl.catalog,
                                support_cache=self.support_cache)
        row = {"at": at, "version": record["version"], "promoted": record["promoted"],
               "trained_on": record["trained_on_requests"], "full_information": record["full_information_contexts"],
               "price_per_10ms": record["price_per_10ms"], "estimator": record["ope"]["estimator"],
               "comparison": record["ope"]["comparison"]}
        self.retrains.append(row)
        return row

    def close(self) -> None:
        self.feedback.close()
