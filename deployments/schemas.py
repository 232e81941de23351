"""The HTTP API's request and response bodies. FastAPI turns these into the OpenAPI
document at /docs and answers malformed input with 422 and a message.

Unknown fields are rejected (`extra="forbid"`), and every size is bounded: query length,
k, context entries and their keys and values, events per request, ids; timestamps must
be finite and between 1970 and 2100 (pydantic itself refuses text with lone surrogates).
The whole body is bounded too (`max_body_bytes`, 413; see deployments/limits.py).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from core.events import EventType
from deployments.jobs import MAX_PPO_ITERATIONS
from retrievers.base import MAX_QUERY_CHARS

MAX_RESULTS = 100
MAX_RELATED = 20
MAX_EVENTS = 100
MAX_CONTEXT = 20
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_VALUE = 256
MAX_USER_ID = 128
MAX_TS = 4_102_444_800.0  # 2100-01-01: later (or non-finite) timestamps are typos or attacks

ContextKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTEXT_KEY)]
Scalar = (Annotated[str, StringConstraints(max_length=MAX_CONTEXT_VALUE)]
          | Annotated[int, Field(ge=-(2 ** 53), le=2 ** 53)] | Annotated[float, Field(allow_inf_nan=False)] | bool)
Timestamp = Annotated[float, Field(ge=0, le=MAX_TS, allow_inf_nan=False)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "chill jazz", "k": 5},
        {"query": "relaxing music with sax", "user_id": "user-7", "context": {"genre": "jazz", "ts": 1700000000},
         "k": 10}]})
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what the user typed")
    user_id: str | None = Field(None, max_length=MAX_USER_ID, description="stable user id, for history features")
    context: dict[ContextKey, Scalar] = Field(
        default_factory=dict, max_length=MAX_CONTEXT,
        description=f"request context, e.g. {{\"genre\": \"jazz\", \"ts\": 1700000000}}: at most {MAX_CONTEXT} "
                    f"entries, keys up to {MAX_CONTEXT_KEY} and text values up to {MAX_CONTEXT_VALUE} characters; "
                    "`ts` (unix seconds, for the time-of-day features) must be a number in 0..2100-01-01")
    k: int = Field(10, ge=1, le=MAX_RESULTS, description="number of ranked results to return")
    related: int = Field(5, ge=0, le=MAX_RELATED, description="related entities (artists, albums, playlists) of "
                         "the top results to return beside them, and entity cards for what the query names; 0: none")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is blank")
        return v

    @field_validator("context")
    @classmethod
    def _ts_in_range(cls, v: dict) -> dict:
        ts = v.get("ts")
        if ts is not None and (isinstance(ts, (bool, str)) or not 0 <= ts <= MAX_TS):
            raise ValueError(f"context.ts must be unix seconds between 0 and {MAX_TS:.0f}, got {ts!r}")
        return v


class ResultItem(BaseModel):
    item_id: str
    score: float = Field(description="ranker score (higher is better)")
    rank: int
    fields: dict[str, str] = Field(description="display fields of the item (title, artist, ...)")
    strategies: list[str] = Field(description="strategies that retrieved this item")
    strategy_ranks: dict[str, int] = Field(default_factory=dict, description="strategy -> the rank at which it "
                                           "retrieved this item")


class PlanOut(BaseModel):
    budgets: dict[str, int] = Field(description="strategy -> candidates requested (0 = not called)")
    propensity: float = Field(description="probability of this plan under the serving policy")
    policy_version: str
    shadow: bool = Field(False, description="off-path shadow exploration: after this answer, the other strategies "
                         "are fetched at their top budget for the log; the answer itself came from `budgets`")


class EntityOut(BaseModel):
    entity_id: str = Field(description="type:normalized name, e.g. artist:taylor whitfield")
    type: str = Field(description="artist, album, playlist, ... (the schema's entity_types, or the loader's)")
    name: str
    fields: dict[str, str] = Field(default_factory=dict, description="qualifiers, e.g. an album's artist")
    n_items: int = Field(description="items that belong to it")
    top_items: list[str] = Field(description="its most popular item ids (at most 5)")
    score: float = Field(description="related: sum of 1/rank of its members among the top results; "
                         "cards: how well the query names it (1 = exactly)")
    via: list[str] = Field(description="the result item ids that brought it (related), or ['query'] (cards)")


class SearchResponse(BaseModel):
    request_id: str = Field(description="quote it in /feedback")
    results: list[ResultItem]
    plan: PlanOut
    failed_strategies: list[str] = Field(description="strategies that failed or timed out on this request")
    degraded: bool = Field(description="true when a strategy or the ranker failed and the answer is partial")
    versions: dict[str, str] = Field(description="policy and ranker versions that served this request")
    timings_ms: dict[str, float] = Field(description="milliseconds per stage (plan, retrieve:<name>, rank, log)")
    entities: list[EntityOut] = Field(default_factory=list, description="entity cards: what the query names")
    related: list[EntityOut] = Field(default_factory=list, description="entities the top results belong to")


class FeedbackEvent(BaseModel):
    """One event on an item the request showed, or on an entity it showed (an entity card or a
    related entity): exactly one of `item_id` and `entity_id`."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=128, description="client-chosen id; a repeat is ignored")
    item_id: str | None = Field(None, min_length=1, max_length=256,
                                description="an item the request showed (or retrieved)")
    entity_id: str | None = Field(None, min_length=1, max_length=256,
                                  description="an entity the request showed (`entities` or `related` of the "
                                  "answer): a click on it credits the results it was shown through")
    type: EventType
    position: int = Field(ge=1, le=MAX_RESULTS, description="1-based position at which the item was shown (for an "
                          "entity: its position among the entities shown)")
    ts: Timestamp | None = Field(None, description="unix seconds (0..2100-01-01); defaults to the time of receipt")

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackEvent:
        if (self.item_id is None) == (self.entity_id is None):
            raise ValueError("an event names exactly one of item_id (a result) and entity_id (an entity card or "
                             "related entity)")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "JsOgydUFOCvczIY9F4xuCg",
         "events": [{"event_id": "3f1c9a", "item_id": "track-00042", "type": "click", "position": 1}]},
        {"request_id": "JsOgydUFOCvczIY9F4xuCg",
         "events": [{"event_id": "3f1c9b", "entity_id": "artist:taylor whitfield", "type": "click", "position": 1}]}]})
    request_id: str = Field(min_length=1, max_length=64, description="the request_id /search returned")
    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_EVENTS,
                                        description=f"1..{MAX_EVENTS} events on items or entities that request "
                                        "showed")


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
    ppo_iterations: int | None = Field(None, ge=1, le=MAX_PPO_ITERATIONS, description="the bandit's PPO training iterations "
                                       "(default 60; fewer train faster, on the same warm start)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: Literal["bandit", "ranker"] = Field(description="serve the version that served before the current one")


class JobOut(BaseModel):
    job_id: str = Field(description="Ray Job id: poll GET /admin/jobs/{job_id}")
    status: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED")
    message: str | None = None
    result: dict | None = Field(None, description="the job's result once it finished (versions, OPE estimates)")
    log_tail: list[str] | None = None


class EraseOut(BaseModel):
    user_id: str
    requests: int = Field(description="request records of the user erased, over every shard")
    events: int = Field(description="feedback events on those requests erased")
    shards: int = Field(description="feedback shards that erased")
