"""The orchestrator: the HTTP ingress (FastAPI) of ltrr's serve and feedback paths, a thin
Ray adapter over `engine.search_service.SearchService` (which holds the request logic and
runs in-process in the latency benchmark).

/search: the service asks the policy for a plan (context history from this replica's
snapshot, refreshed in the background), fans out concurrently (each strategy with its own
timeout) to the strategy deployments through DeploymentHandles, unions the candidates with
their provenance, ranks them on the ranker deployment, answers, and logs the request
durably to its feedback shard after the answer: one remote call per called strategy, one
to the ranker and one log write. A failed or slow strategy degrades the answer (it is named
in `failed_strategies`) instead of failing it; so does a failed ranker (the fused order
is served).

/feedback: route the events to the request's shard, which stores them with fsync before
this answers 202; unknown request ids are refused with 404, an item or entity the request
did not show with 422. Only events of a durable
request are stored (the service waits for a log write still in flight). Past
`load_shedding.feedback_max_in_flight` calls waiting on the actors, /feedback answers 503
(or 429) with Retry-After and stores nothing, so the actors' queues stay bounded.

Load shedding: a strategy whose queue is full (Serve's BackPressureError on its handle)
is left out of the answer; a request that no strategy could serve is answered 503 (or
the configured 429) with Retry-After, never 500. Bodies over `max_body_bytes` get 413.
"""
# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations
# at runtime to tell request bodies from query parameters.
import asyncio
import logging
import math
import re
import secrets
import time

from fastapi import FastAPI, Header, HTTPException
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from core.records import Candidate, EventRecord
from deployments import console, http_errors, jobs
from deployments.config import AppArgs
from deployments.feedback import RayFeedback
from deployments.limits import BodyLimit
from deployments.metrics import ServeMetrics
from deployments.retriever import deployment_name
from deployments.schemas import (
    MAX_USER_ID,
    EntityOut,
    EraseOut,
    FeedbackRequest,
    FeedbackResponse,
    JobOut,
    PlanOut,
    ResultItem,
    RetrainRequest,
    RollbackRequest,
    SearchRequest,
    SearchResponse,
    StrategyStatus,
)
from engine.entities import CARD_ITEMS, EntityHit
from engine.feedback_store import BadEvent, UnknownRequest
from engine.pipeline import Overloaded, RetrieveFn, Unavailable
from engine.search_service import SearchService, ServiceTimings
from engine.sharding import scatter_gather
from retrievers import strategy_class
from retrievers.base import Query
from retrievers.index import IndexHandle
from rl.policy import LEVELS, Policy
from rl.serving import build_policy

log = logging.getLogger("ray.serve")
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PERSONAL_STATS = {"users", "query_clicks"}  # FeedbackTotals fields that name users or their queries

api = FastAPI(title="ltrr", version="0.1.0",
              description="Learning to rank and retrieve: a bandit chooses retrieval strategies, XGBoost ranks.")
api.add_middleware(BodyLimit)
http_errors.install(api)
api.include_router(console.router)
SHED_DOC = "overloaded, or no strategy could answer: retry after the Retry-After header (seconds)"
LIMIT_DOCS: dict = {413: {"description": "request body over max_body_bytes"},
                    422: {"description": "malformed JSON, unknown fields or out-of-range values, with a message"}}


async def _awaited(response):
    return await response


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64)
@serve.ingress(api)
class Orchestrator:
    def __init__(self, retrievers: dict[str, DeploymentHandle | list[DeploymentHandle]], ranker: DeploymentHandle,
                 args: dict):
        self.args = AppArgs.model_validate(args)
        api.state.max_body_bytes = self.args.max_body_bytes
        self.retrievers = retrievers
        self.ranker = ranker
        self.policy_version_config = "fixed"
        self.metrics = ServeMetrics()
        self._metrics_task: asyncio.Task | None = None  # started by the first request, on the replica's loop
        self.feedback = RayFeedback.create(self.args.paths.feedback, self.args.feedback_shards)
        self.feedback_in_flight = 0  # /feedback calls waiting on the actors (load_shedding.feedback_max_in_flight)
        a = self.args
        self.service = SearchService(
            {name: self._strategy_fn(name, handle) for name, handle in retrievers.items()}, self._rank, self.feedback,
            self._policy("fixed"), IndexHandle.open(a.index_dir),
            ServiceTimings(a.strategy_timeout_ms / 1000, a.ranker_timeout_ms / 1000, a.circuit_cooldown_s,
                           a.load_shedding.retry_after_s, a.history_refresh_s),
            parse_for=frozenset(s for s in a.strategies if strategy_class(s).uses_parse),
            lookahead=max(LEVELS) if a.policy.lookahead else 0)
        self.pipeline = self.service.pipeline

    def _policy(self, version: str, bandit_dir: str | None = None) -> Policy:
        return build_policy(self.args.policy, list(self.retrievers), version,
                            bandit_dir or self.args.paths.bandit_models)

    def reconfigure(self, config: dict) -> None:
        """user_config {bandit_dir, version}: swap the serving policy with no restart. A version
        that cannot be loaded leaves the current policy serving (and is logged)."""
        version = str(config.get("version", "fixed"))
        if version == self.policy_version_config:
            return
        try:
            policy = self._policy(version, config.get("bandit_dir"))
        except Exception:
            log.exception("orchestrator: could not load policy %r; still serving %s", version,
                          self.pipeline.policy.version)
            return
        self.pipeline.policy = policy
        self.policy_version_config = version
        log.info("orchestrator: now serving policy %s", policy.version)

    def _admin(self, authorization: str | None) -> None:
        token = self.args.admin_token
        if not token:
            raise HTTPException(403, "admin endpoints are disabled: set admin_token in the app config")
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "admin endpoints need the header `Authorization: Bearer <admin token>`",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(authorization[len("Bearer "):].encode(), token.encode()):
            raise HTTPException(403, "wrong admin token")

    def _strategy_fn(self, name: str, handle: DeploymentHandle | list[DeploymentHandle]) -> RetrieveFn:
        """One strategy's call: its deployment, or a scatter-gather over its shards' deployments, each
        shard with a little less than the strategy's timeout, so a lost shard degrades the answer."""
        if not isinstance(handle, list):
            return self._retrieve_fn(handle)
        return scatter_gather(name, [self._retrieve_fn(h) for h in handle], 0.9 * self.args.strategy_timeout_ms / 1000)

    @staticmethod
    def _retrieve_fn(handle: DeploymentHandle) -> RetrieveFn:
        async def call(query: Query, k: int) -> list[Candidate]:
            response = handle.retrieve.remote(query, k)
            try:
                return await response
            except asyncio.CancelledError:  # timed out: stop the work on the replica too
                response.cancel()
                raise
            except BackPressureError as exc:  # its queue is full: shed, do not trip the breaker
                raise Overloaded(exc.message, exc.retry_after_s) from None
        return call

    async def _rank(self, query: str, cands: list[Candidate]) -> tuple[str, list[tuple[str, float]]]:
        return await self.ranker.rank.remote(query, cands)

    @api.post("/search", response_model=SearchResponse, responses={**LIMIT_DOCS, 503: {"description": SHED_DOC}})
    async def search(self, req: SearchRequest) -> SearchResponse:
        if len(req.query) > self.args.max_query_chars:
            raise HTTPException(422, f"query is {len(req.query)} characters long; this service's limit is "
                                     f"{self.args.max_query_chars} (app config `max_query_chars`)")
        try:
            answer = await self.service.search(req.query, req.k, req.user_id, req.context, req.related)
        except Unavailable as exc:
            raise HTTPException(self.args.load_shedding.status_code, f"{exc.reason}; retry later",
                                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}) from None
        res = answer.result
        if self._metrics_task is None:
            self._metrics_task = asyncio.get_running_loop().create_task(self.metrics.flush_forever())
        found_by = res.found_by
        ranks = {c.item_id: {s: h.rank for s, h in c.hits.items()} for c in res.candidates}
        plan = res.plan
        self.metrics.record(plan.budgets, res.fetched, res.latency_ms, res.failed, plan.policy_version,
                            res.ranker_version)
        return SearchResponse(
            request_id=res.request_id,
            results=[ResultItem(item_id=i, score=s, rank=r, fields=answer.display.get(i, {}), strategies=found_by[i],
                                strategy_ranks=ranks.get(i, {}))
                     for r, (i, s) in enumerate(res.ranked, 1)],
            plan=PlanOut(budgets=plan.budgets, propensity=plan.propensity, policy_version=plan.policy_version,
                         shadow=plan.shadow),
            failed_strategies=res.failed, degraded=bool(res.failed),
            versions={"policy": plan.policy_version, "ranker": res.ranker_version}, timings_ms=res.timings_ms,
            entities=[self._entity(h) for h in answer.entities], related=[self._entity(h) for h in answer.related])

    @staticmethod
    def _entity(hit: EntityHit) -> EntityOut:
        e = hit.entity
        return EntityOut(entity_id=e.id, type=e.type, name=e.name, fields=e.fields, n_items=len(e.items),
                         top_items=e.items[:CARD_ITEMS], score=hit.score, via=list(hit.via))

    @api.post("/feedback", status_code=202, response_model=FeedbackResponse,
              responses={**LIMIT_DOCS, 404: {"description": "unknown request_id"}, 503: {"description": SHED_DOC}})
    async def feedback(self, req: FeedbackRequest) -> FeedbackResponse:
        shed = self.args.load_shedding
        if self.feedback_in_flight >= shed.feedback_max_in_flight:  # shed before the actors' queues grow
            raise HTTPException(shed.status_code, f"overloaded: {self.feedback_in_flight} feedback calls are waiting "
                                "on the feedback store; nothing was stored; retry later",
                                headers={"Retry-After": str(max(1, math.ceil(shed.retry_after_s)))})
        self.feedback_in_flight += 1
        try:
            return await self._store_feedback(req)
        finally:
            self.feedback_in_flight -= 1

    async def _store_feedback(self, req: FeedbackRequest) -> FeedbackResponse:
        now = time.time()
        events = [EventRecord(event_id=e.event_id, request_id=req.request_id, item_id=e.item_id, type=e.type,
                              position=e.position, ts=e.ts if e.ts is not None else now, entity_id=e.entity_id)
                  for e in req.events]
        try:
            res = await self.service.add_events(req.request_id, events)
        except UnknownRequest:
            raise HTTPException(404, f"unknown request_id {req.request_id!r}: feedback must quote the request_id "
                                     "that /search returned") from None
        except BadEvent as exc:
            raise HTTPException(422, str(exc.args[0] if exc.args else exc)) from None
        return FeedbackResponse(request_id=req.request_id, accepted=res.accepted, duplicates=res.duplicates)

    @api.get("/healthz")
    async def healthz(self) -> dict:
        try:
            ranker = await asyncio.wait_for(_awaited(self.ranker.version.remote()), 5)
        except Exception:
            ranker = "unavailable"
        return {"status": "ok", "strategies": list(self.retrievers), "policy": self.pipeline.policy.version,
                "ranker": ranker}

    @api.post("/admin/retrain", status_code=202, response_model=JobOut)
    async def retrain(self, req: RetrainRequest, authorization: str | None = Header(None)) -> JobOut:
        """Submit a retraining Ray Job (admin token required); poll GET /admin/jobs/{job_id}."""
        self._admin(authorization)
        job_id = await asyncio.to_thread(jobs.submit, self.args.dashboard_address, self.args.state_dir, "retrain",
                                         req.what, req.tolerance, req.ppo_iterations)
        return JobOut(job_id=job_id, status="PENDING")

    @api.post("/admin/rollback", status_code=202, response_model=JobOut)
    async def rollback(self, req: RollbackRequest, authorization: str | None = Header(None)) -> JobOut:
        """Submit a rollback Ray Job: serve the previously promoted version (admin token required)."""
        self._admin(authorization)
        job_id = await asyncio.to_thread(jobs.submit, self.args.dashboard_address, self.args.state_dir, "rollback",
                                         req.what)
        return JobOut(job_id=job_id, status="PENDING")

    @api.get("/admin/jobs/{job_id}", response_model=JobOut)
    async def job(self, job_id: str, authorization: str | None = Header(None)) -> JobOut:
        self._admin(authorization)
        if not _JOB_ID.match(job_id):
            raise HTTPException(422, "job ids are letters, digits, '.', '_' and '-'")
        try:
            info = await asyncio.to_thread(jobs.job_info, self.args.dashboard_address, job_id)
        except Exception as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                raise HTTPException(404, f"no job {job_id!r}") from None
            raise HTTPException(502, f"the Ray Jobs API did not answer: {type(exc).__name__}") from None
        return JobOut(**{k: v for k, v in info.items() if k in JobOut.model_fields})

    @api.delete("/admin/users/{user_id:path}", response_model=EraseOut,
                responses={422: {"description": "a user id that is empty or over 128 characters"}})
    async def erase_user(self, user_id: str, authorization: str | None = Header(None)) -> EraseOut:
        """Erase a user (admin token required): every request they made and every event on those
        requests, from every feedback shard's files (fsynced; an interrupted erasure finishes on the
        shard's next start), its aggregates, the memory strategy's index and every later export.
        The id is percent-encoded in the path; it may contain '/' (user ids are any text)."""
        self._admin(authorization)
        if not 1 <= len(user_id) <= MAX_USER_ID:
            raise HTTPException(422, f"user ids are 1..{MAX_USER_ID} characters")
        parts = await self.feedback.erase_user(user_id)
        return EraseOut(user_id=user_id, requests=sum(p.requests for p in parts), events=sum(p.events for p in parts),
                        shards=len(parts))

    @api.get("/strategies", response_model=list[StrategyStatus])
    async def strategies(self) -> list[StrategyStatus]:
        app = serve.get_replica_context().app_name
        status = await asyncio.to_thread(serve.status)
        deps = status.applications[app].deployments if app in status.applications else {}
        out = []
        for name, handle in self.retrievers.items():
            shards = [None] if not isinstance(handle, list) else list(range(len(handle)))
            for shard in shards:
                dep = deployment_name(name, shard)
                d = deps.get(dep)
                running = (d.replica_states or {}).get("RUNNING", 0) if d else 0
                out.append(StrategyStatus(name=name, deployment=dep,
                                          status=str(d.status.value if hasattr(d.status, "value") else d.status)
                                          if d else "MISSING",
                                          replicas=running, circuit_open=self.pipeline.breaker.is_open(name)))
        return out

    @api.get("/promotions")
    async def promotions(self) -> dict:
        """The learning loop: the bandit's OPE gate records (newest first) and the promotion histories."""
        return await asyncio.to_thread(console.promotions, self.args.state_dir)

    @api.get("/stats")
    async def stats(self) -> dict:
        """Public feedback aggregates summed over shards: requests, events by type, per-strategy
        counts. Nothing per user or per query: that is GET /admin/stats (admin token)."""
        return (await self.feedback.totals()).model_dump(exclude={"shard", "latest_seq", *PERSONAL_STATS})

    @api.get("/admin/stats")
    async def admin_stats(self, authorization: str | None = Header(None)) -> dict:
        """Every feedback aggregate, the personal ones too: events per user, clicks per query."""
        self._admin(authorization)
        return (await self.feedback.totals()).model_dump(exclude={"shard", "latest_seq"})
