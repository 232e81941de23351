"""The application's arguments: what `serve_config.yaml` passes to `build_app(args)`."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.paths import DASHBOARD_URL, StatePaths
from retrievers import KNOWN_STRATEGIES, STRATEGIES
from retrievers.base import MAX_QUERY_CHARS
from rl.serving import PolicyArgs


class LoadSheddingArgs(BaseModel):
    """Past capacity the service answers 503 (or 429) with `Retry-After` instead of queueing
    without bound. Serve enforces `max_queued_requests` at each caller: the HTTP proxy for the
    orchestrator, the orchestrator's handles for the ranker and the strategies. A
    `max_queued_requests` or `backpressure_config` set on a deployment's own entry in
    serve_config.yaml wins over these app-wide values."""

    model_config = ConfigDict(extra="forbid")
    orchestrator_max_queued: int = Field(100, ge=1, le=100_000, description="requests the HTTP proxy holds for "
                                         "the orchestrator once every replica runs max_ongoing_requests; more "
                                         "are answered `status_code` with Retry-After by the proxy")
    ranker_max_queued: int = Field(100, ge=1, le=100_000, description="ranker calls queued per orchestrator "
                                   "replica; past it the answer falls back to the fused order (degraded)")
    retriever_max_queued: int = Field(50, ge=1, le=100_000, description="calls queued per strategy and "
                                      "orchestrator replica; past it that strategy is left out of the answer "
                                      "(degraded), and a request that no strategy could serve is answered "
                                      "`status_code` with Retry-After")
    feedback_max_in_flight: int = Field(32, ge=1, le=100_000, description="/feedback calls each orchestrator "
                                        "replica has waiting on the feedback actors (one fsync per call, one call "
                                        "at a time per actor); past it /feedback answers `status_code` with "
                                        "Retry-After and stores nothing, instead of queueing at the actors")
    retry_after_s: float = Field(1.0, gt=0, le=3600, description="the Retry-After header (whole seconds, rounded "
                                 "up) of every answer that sheds load")
    status_code: Literal[503, 429] = Field(503, description="the status of an answer that sheds load")


class CustomStrategy(BaseModel):
    """A user-written strategy, registered by import path (see retrievers/http_search.py)."""

    model_config = ConfigDict(extra="forbid")
    import_path: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:Class of a "
                             "retrievers.base.Retriever subclass with a classmethod from_config(index_dir, **args)")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of from_config")


class AppArgs(BaseModel):
    """Arguments of the ltrr Serve application."""

    model_config = ConfigDict(extra="forbid")
    index_dir: str = Field(description="index directory built by `ltrr index`")
    state_dir: str = Field("state", description="where feedback logs and model artifacts live")
    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES),
                                  description="strategies to deploy (each must be built in index_dir)")
    feedback_shards: int = Field(2, ge=1, le=64, description="number of feedback actors")
    strategy_timeout_ms: float = Field(1000, gt=0, description="a strategy slower than this is dropped from the answer")
    ranker_timeout_ms: float = Field(2000, gt=0, description="past this the answer falls back to the fused order")
    circuit_cooldown_s: float = Field(5.0, ge=0, description="after a failure, skip the strategy for this long")
    history_refresh_s: float = Field(1.0, gt=0, le=3600, description="each orchestrator replica pulls the "
                                     "context history that changed from the feedback shards this often; /search "
                                     "reads its copy (engine/history_feed.py), at most this far behind")
    shards: dict[str, int] = Field(
        default_factory=dict, description="strategies served sharded, {strategy: n}: n deployments "
        "retriever-<strategy>-shard<i>, each loading shard i (built by `ltrr index --shards strategy=n`); the "
        "orchestrator scatters each call to all of them and merges by score (engine/sharding.py)")
    custom_strategies: dict[str, CustomStrategy] = Field(
        default_factory=dict, description="user strategies by name: each becomes the deployment retriever-<name>, "
        "joins the policy's action space (give it a budget in policy.budgets to use it in the fixed plan) and the "
        "metrics")
    policy: PolicyArgs = Field(default_factory=PolicyArgs)
    load_shedding: LoadSheddingArgs = Field(default_factory=LoadSheddingArgs,
                                            description="queue bounds and the answer past them")
    max_query_chars: int = Field(512, ge=16, le=MAX_QUERY_CHARS, description="/search refuses longer queries with "
                                 "422 (offline evaluation has no such limit, only the strategies' sanity bound)")
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024, description="requests with a larger body are "
                                "refused with 413 before they are parsed")
    admin_token: str | None = Field(None, description="bearer token of the /admin endpoints; unset = they refuse "
                                    "everything. `ltrr up` generates one into <state>/admin_token")
    dashboard_address: str = Field(DASHBOARD_URL, description="Ray dashboard (Jobs API) for retraining")

    @field_validator("custom_strategies")
    @classmethod
    def _custom_names(cls, v: dict[str, CustomStrategy]) -> dict[str, CustomStrategy]:
        import re

        for name in v:
            if name in STRATEGIES or not re.match(r"^[a-z][a-z0-9_]{0,31}$", name):
                raise ValueError(f"custom strategy name {name!r} must be new (not {', '.join(STRATEGIES)}) and "
                                 "lower-case letters, digits or '_' (at most 32)")
        return v

    @field_validator("shards")
    @classmethod
    def _shard_counts(cls, v: dict[str, int]) -> dict[str, int]:
        for name, n in v.items():
            if name not in KNOWN_STRATEGIES or not 1 <= n <= 64:
                raise ValueError(f"shards: {name!r}={n}; a built-in strategy ({', '.join(KNOWN_STRATEGIES)}) "
                                 "and 1..64 shards")
        return v

    @property
    def all_strategies(self) -> list[str]:
        """The built-in strategies served, then the custom ones."""
        return [*self.strategies, *self.custom_strategies]

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.state_dir)
