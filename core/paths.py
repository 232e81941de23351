"""Where ltrr keeps its state, and the addresses its processes listen on.

One state directory (default `state/`) holds everything a running service writes:

    <state>/serve_config.yaml     the rendered Serve config (`ltrr up`), mode 0600
    <state>/admin_token           the admin bearer token, mode 0600
    <state>/feedback/shard-<i>/   each feedback shard's durable logs
    <state>/exports/<stamp>/      Parquet exports of the feedback logs, one per retrain
    <state>/models/ranker/<v>/    ranker artifacts; history.jsonl lists their promotions
    <state>/models/bandit/<v>/    bandit artifacts; history.jsonl likewise

Every other module asks `StatePaths` for these paths instead of spelling them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ModelKind = Literal["ranker", "bandit"]
MODEL_KINDS: tuple[ModelKind, ...] = ("ranker", "bandit")

HOST = "127.0.0.1"
HTTP_PORT = 8000  # Serve's HTTP proxy
DASHBOARD_PORT = 8265  # Ray dashboard: Jobs API and Serve's REST API
METRICS_PORT = 8090  # Ray's metrics agent (Prometheus), with the app's metrics
DASHBOARD_URL = f"http://{HOST}:{DASHBOARD_PORT}"
DEFAULT_STATE = "state"
#: The Serve config template in the source tree; `ltrr up` renders it into <state>/serve_config.yaml.
SERVE_CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "serve_config.yaml"
HISTORY_FILE = "history.jsonl"


def base_url(port: int = HTTP_PORT) -> str:
    """The service's HTTP address on this machine."""
    return f"http://{HOST}:{port}"


@dataclass(frozen=True)
class StatePaths:
    """The layout of one state directory (see the module docstring)."""

    root: Path

    def __init__(self, root: str | Path = DEFAULT_STATE) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def serve_config(self) -> Path:
        return self.root / "serve_config.yaml"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin_token"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def new_export(self) -> Path:
        """A fresh export directory named by the current time."""
        return self.exports / time.strftime("%Y%m%d-%H%M%S")

    def models(self, kind: ModelKind) -> Path:
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
        return self.root / "models" / kind

    @property
    def ranker_models(self) -> Path:
        return self.models("ranker")

    @property
    def bandit_models(self) -> Path:
        return self.models("bandit")

    def history(self, kind: ModelKind) -> Path:
        """The promotion history of one model kind."""
        return self.models(kind) / HISTORY_FILE

    def resolved(self) -> StatePaths:
        """The same layout with an absolute root (replicas and jobs do not share our cwd)."""
        return StatePaths(self.root.resolve())
