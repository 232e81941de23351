"""The rows the serve path writes and the retrain path reads.

A request record is written (durably) for every /search; a feedback event for every
click, play, like or skip. They join on `request_id`. Candidates keep their provenance
(which strategies found them, at which rank and score) so that the reward of a plan,
and ranker features, can be recomputed offline.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["click", "play", "like", "skip"]
EVENT_TYPES: tuple[str, ...] = ("click", "play", "like", "skip")


class Hit(BaseModel):
    """Where one strategy put a candidate."""

    model_config = ConfigDict(extra="forbid")
    rank: int = Field(description="1-based rank in that strategy's list")
    score: float = Field(description="that strategy's score")


class CandidateRecord(BaseModel):
    """One candidate in the union, with its provenance."""

    model_config = ConfigDict(extra="forbid")
    item_id: str
    hits: dict[str, Hit] = Field(description="strategy name -> where it found the item")


class PlanRecord(BaseModel):
    """What the policy chose: candidates to take per strategy (0 = not called)."""

    model_config = ConfigDict(extra="forbid")
    budgets: dict[str, int] = Field(description="strategy -> budget; 0 means the strategy was not called")
    propensity: float = Field(description="probability of this plan under the serving policy")
    policy_version: str
    shadow: bool = Field(False, description="shadow exploration: every strategy called at its top budget")


class RequestRecord(BaseModel):
    """Everything the serve path knew and did for one /search."""

    model_config = ConfigDict(extra="forbid")
    request_id: str
    ts: float = Field(description="unix seconds")
    query: str
    user_id: str | None = None
    context: dict = Field(default_factory=dict)
    features: list[float] = Field(default_factory=list, description="context features the policy saw")
    plan: PlanRecord
    failed: list[str] = Field(default_factory=list, description="strategies that failed or timed out")
    latency_ms: dict[str, float] = Field(default_factory=dict, description="strategy -> measured call latency")
    candidates: list[CandidateRecord]
    shown: list[str] = Field(description="item ids in the order returned to the user")
    ranker_version: str


class EventRecord(BaseModel):
    """One piece of user feedback on a shown item."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    request_id: str
    item_id: str
    type: EventType
    position: int = Field(description="1-based position at which the item was shown")
    ts: float
