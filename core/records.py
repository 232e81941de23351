"""The rows the serve path writes and the retrain path reads.

A request record is written (durably) for every /search; a feedback event for every
click, play, like or skip. They join on `request_id`. Candidates keep their provenance
(which strategies found them, at which rank and score) so that the reward of a plan,
and ranker features, can be recomputed offline.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.events import EventType


def _hit(rank: int, score: float, features: dict[str, float] | None) -> Hit:
    return Hit(rank, score, features)


def _candidate(item_id: str, hits: tuple) -> Candidate:
    return Candidate(item_id, {s: Hit(r, sc, f) for s, r, sc, f in hits})


@dataclass(slots=True)
class Hit:
    """Where one strategy put a candidate: its 1-based rank and score there, and any
    features the strategy computed for it (e.g. structured's constraint matches)."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    rank: int  # 1-based rank in that strategy's list
    score: float  # that strategy's score
    features: dict[str, float] | None = None

    def __reduce__(self):  # a compact pickle: hits cross process boundaries on every request
        return _hit, (self.rank, self.score, self.features)


@dataclass(slots=True)
class Candidate:
    """One retrieved item and its provenance: the strategies that found it, with their hits.

    The one candidate type from a strategy's answer (one hit) through the union (a hit per
    strategy that found the item), the ranker and the request log, so nothing a strategy
    said about an item is lost on the way."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    item_id: str
    hits: dict[str, Hit]  # strategy name -> where it found the item

    @classmethod
    def of(cls, strategy: str, item_id: str, rank: int, score: float,
           features: dict[str, float] | None = None) -> Candidate:
        """A candidate found by one strategy."""
        return cls(item_id, {strategy: Hit(rank, score, features)})

    def _only(self) -> tuple[str, Hit]:
        if len(self.hits) != 1:
            raise ValueError(f"candidate {self.item_id!r} was found by {len(self.hits)} strategies; read .hits")
        return next(iter(self.hits.items()))

    @property
    def strategy(self) -> str:
        """The strategy of a single-strategy candidate (a strategy's own answer)."""
        return self._only()[0]

    @property
    def rank(self) -> int:
        """The rank of a single-strategy candidate."""
        return self._only()[1].rank

    @property
    def score(self) -> float:
        """The score of a single-strategy candidate."""
        return self._only()[1].score

    @property
    def features(self) -> dict[str, float] | None:
        """The features of a single-strategy candidate."""
        return self._only()[1].features

    def __reduce__(self):
        return _candidate, (self.item_id, tuple((s, h.rank, h.score, h.features) for s, h in self.hits.items()))

    def within(self, budgets: Mapping[str, int]) -> Candidate | None:
        """This candidate as a plan with `budgets` would have found it: only the hits of called
        strategies that ranked it within their budget (None if no strategy would have)."""
        hits = {s: h for s, h in self.hits.items() if h.rank <= budgets.get(s, 0)}
        if len(hits) == len(self.hits):
            return self
        return Candidate(self.item_id, hits) if hits else None


def best_first(pairs: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """(item_id, score) pairs best first, ties by item id: the one ranked order that serving,
    ranker training and the bandit's ranked credit (`rl.reward`) share."""
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def within(candidates: Iterable[Candidate], budgets: Mapping[str, int]) -> list[Candidate]:
    """The candidates a plan with `budgets` would have retrieved from a larger logged fetch,
    each with only that plan's hits. Exact because every hit keeps its strategy and rank
    (semi-bandit feedback): a strategy's top b is a prefix of its top B >= b."""
    out = []
    for c in candidates:
        got = c.within(budgets)
        if got is not None:
            out.append(got)
    return out


class PlanRecord(BaseModel):
    """What the policy chose: candidates to take per strategy (0 = not called)."""

    model_config = ConfigDict(extra="forbid")
    budgets: dict[str, int] = Field(description="strategy -> budget; 0 means the strategy was not called")
    propensity: float = Field(description="probability of this plan under the serving policy")
    policy_version: str
    shadow: bool = Field(False, description="off-path shadow exploration: after the response, every strategy not "
                         "fetched at its top budget was fetched at it and logged (`RequestRecord.fetched`); what "
                         "the user saw came from `budgets` alone")


class ShownEntity(BaseModel):
    """An entity shown beside a request's results (an entity card or a related entity): what
    /feedback on that request may name, and the results a click on it credits (`core.credit`)."""

    model_config = ConfigDict(extra="forbid")
    entity_id: str
    role: Literal["card", "related"] = Field(description="card: the query names it; related: top results belong "
                                             "to it")
    via: list[str] = Field(default_factory=list, description="the shown result items it was shown through, in "
                           "the order shown: for a related entity the top results that brought it, for a card the "
                           "shown results that belong to it (empty when none does)")


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
    candidates: list[Candidate] = Field(description="every logged candidate with its provenance; for a shadow "
                                        "request this includes what the off-path fetch found (see `served()`)")
    shown: list[str] = Field(description="item ids in the order returned to the user")
    ranker_version: str
    fetched: dict[str, int] = Field(default_factory=dict, description="strategy -> depth its logged hits cover "
                                    "(the plan's budget, or the top budget after a shadow fetch); empty means "
                                    "the plan's budgets")
    shadow_latency_ms: dict[str, float] = Field(default_factory=dict, description="strategy -> latency of its "
                                                "off-path shadow call")
    rank_ms: float | None = Field(None, description="the ranker call's measured latency")
    entities: list[ShownEntity] = Field(default_factory=list, description="the entity cards and related entities "
                                        "shown beside the results (records logged before entities have none)")

    @property
    def depth(self) -> dict[str, int]:
        """strategy -> how deep its logged hits go: any plan within these depths has an exact reward."""
        return {s: max(b, self.fetched.get(s, 0)) for s, b in self.plan.budgets.items()}

    def served(self) -> list[Candidate]:
        """The candidates the served plan retrieved (what the ranker ordered and the user could see)."""
        return within(self.candidates, self.plan.budgets) if self.fetched else list(self.candidates)

    def entity_via(self) -> dict[str, tuple[str, ...]]:
        """entity id -> the result items it was shown through (an entity shown both as a card and as
        a related entity: the union of both, in first-seen order)."""
        out: dict[str, tuple[str, ...]] = {}
        for e in self.entities:
            out[e.entity_id] = tuple(dict.fromkeys((*out.get(e.entity_id, ()), *e.via)))
        return out


class EventRecord(BaseModel):
    """One piece of user feedback on a shown item, or on a shown entity (card or related entity).

    Exactly one of `item_id` and `entity_id` is set; the HTTP schema and `FeedbackShard.add_events`
    refuse anything else before it is stored. What an entity event credits (the result items
    it was shown through) is `core.credit`'s rule."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    request_id: str
    item_id: str | None = Field(None, description="the shown item the event is on (item events)")
    type: EventType
    position: int = Field(description="1-based position at which the item (or the entity, among the entities "
                          "shown) was shown")
    ts: float
    entity_id: str | None = Field(None, description="the shown entity the event is on (entity events)")
