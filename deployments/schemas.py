"""The HTTP API's request and response bodies. FastAPI turns these into the OpenAPI
document at /docs and answers malformed input with 422 and a message.

Unknown fields are rejected (`extra="forbid"`), and every size is bounded: query length,
k, context entries, events per request.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrievers.base import MAX_QUERY_CHARS

MAX_RESULTS = 100
MAX_EVENTS = 100
MAX_CONTEXT = 20

Scalar = str | int | float | bool


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what the user typed")
    user_id: str | None = Field(None, max_length=128, description="stable user id, for history features")
    context: dict[str, Scalar] = Field(default_factory=dict, max_length=MAX_CONTEXT,
                                       description="request context, e.g. {\"genre\": \"jazz\", \"locale\": \"en\"}")
    k: int = Field(10, ge=1, le=MAX_RESULTS, description="number of ranked results to return")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is blank")
        return v


class ResultItem(BaseModel):
    item_id: str
    score: float = Field(description="ranker score (higher is better)")
    rank: int
    fields: dict[str, str] = Field(description="display fields of the item (title, artist, ...)")
    strategies: list[str] = Field(description="strategies that retrieved this item")


class PlanOut(BaseModel):
    budgets: dict[str, int] = Field(description="strategy -> candidates requested (0 = not called)")
    propensity: float = Field(description="probability of this plan under the serving policy")
    policy_version: str
    shadow: bool = False


class SearchResponse(BaseModel):
    request_id: str = Field(description="quote it in /feedback")
    results: list[ResultItem]
    plan: PlanOut
    failed_strategies: list[str] = Field(description="strategies that failed or timed out on this request")
    degraded: bool = Field(description="true when a strategy or the ranker failed and the answer is partial")
    versions: dict[str, str] = Field(description="policy and ranker versions that served this request")
    timings_ms: dict[str, float] = Field(description="milliseconds per stage (plan, retrieve:<name>, rank, log)")


class FeedbackEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=128, description="client-chosen id; a repeat is ignored")
    item_id: str = Field(min_length=1, max_length=256)
    type: Literal["click", "play", "like", "skip"]
    position: int = Field(ge=1, le=MAX_RESULTS, description="1-based position at which the item was shown")
    ts: float | None = Field(None, ge=0, description="unix seconds; defaults to the time of receipt")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class FeedbackResponse(BaseModel):
    request_id: str
    accepted: int = Field(description="events stored durably by this call")
    duplicates: int = Field(description="events ignored because their event_id was already stored")


class StrategyStatus(BaseModel):
    name: str
    deployment: str
    status: str = Field(description="Serve's status of the deployment (HEALTHY, UPDATING, ...)")
    replicas: int = Field(description="running replicas")
    circuit_open: bool = Field(description="true while the orchestrator skips it after a recent failure")


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: Literal["bandit", "ranker", "all"] = Field("all", description="which models to retrain")
    tolerance: float | None = Field(None, ge=0, le=10, description="OPE gate: promote the new bandit unless its "
                                    "estimated value is below the serving policy's by more than this (reward units)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: Literal["bandit", "ranker"] = Field(description="serve the version that served before the current one")


class JobOut(BaseModel):
    job_id: str = Field(description="Ray Job id: poll GET /admin/jobs/{job_id}")
    status: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED")
    message: str | None = None
    result: dict | None = Field(None, description="the job's result once it finished (versions, OPE estimates)")
    log_tail: list[str] | None = None
