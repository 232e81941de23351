"""An external search service as a strategy: Elasticsearch, OpenSearch or anything that
answers their `_search` shape over HTTP.

Not one of the built-in STRATEGIES: it is the worked example of a user strategy, registered
by import path in `serve_config.yaml` (the app's `custom_strategies`, see
deployments/config.py):

    custom_strategies:
      http: {import_path: "retrievers.http_search:HttpSearchRetriever",
             args: {url: "http://127.0.0.1:9200/tracks/_search", fields: ["title^3", "artist^2"]}}

It then runs as its own deployment (`retriever-http`), joins the bandit's action space
and the metrics, and scales with `ltrr scale http --replicas 2`. A user strategy is any
`retrievers.base.Retriever` subclass with a classmethod `from_config(index_dir, **args)`.

Each call POSTs `{"size": k, "query": {"multi_match": {"query": text, "fields": [...]}}}`
and reads `hits.hits[]._id` and `_score`. A failure or timeout raises, so the orchestrator
degrades the answer and its circuit breaker pauses the strategy, as for any strategy.
"""
from __future__ import annotations

from pathlib import Path

import httpx

from core.errors import IndexError_
from core.model import Dataset
from core.records import Candidate
from retrievers.base import Query, Retriever, ranked


class HttpSearchRetriever(Retriever):
    """Candidates from an external `_search` endpoint."""

    name = "http"

    def __init__(self, url: str, fields: list[str] | None = None, timeout_s: float = 0.8, name: str = "http"):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://..., got {url!r}")
        self.url = url
        self.fields = list(fields or ["*"])
        self.strategy = name
        self.client = httpx.Client(timeout=timeout_s)

    @classmethod
    def from_config(cls, index_dir: str | Path, **args) -> HttpSearchRetriever:
        """The service needs no local index: `index_dir` is unused (the catalogue's ids must match)."""
        return cls(**args)

    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path) -> None:
        raise IndexError_("the http strategy searches an external service: index the catalogue there")

    @classmethod
    def load(cls, out_dir: Path) -> HttpSearchRetriever:
        raise IndexError_("the http strategy is configured with from_config(url=...), not loaded from an index")

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        body = {"size": k, "query": {"multi_match": {"query": query.text, "fields": self.fields}}}
        r = self.client.post(self.url, json=body)
        r.raise_for_status()
        hits = (r.json().get("hits") or {}).get("hits") or []
        return ranked([(str(h["_id"]), float(h.get("_score") or 0.0)) for h in hits], self.strategy, k)

    def close(self) -> None:
        self.client.close()
