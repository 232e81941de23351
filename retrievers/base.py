"""The one small interface every retrieval strategy implements.

A strategy is a plain Python class, with no Ray in sight, so the same code serves,
evaluates and tests:

    Strategy.build(dataset, out_dir)   # write its index under out_dir
    Strategy.load(out_dir)             # read it back
    strategy.retrieve(query, k)        # -> list[Candidate], best first

`Query` carries the text plus the request context (user, locale, category hints),
because some strategies (popularity per category, explore) use the context.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.errors import BadRequest
from core.model import Dataset
from core.records import Candidate
from retrievers.understanding import Parse

#: A sanity bound for every strategy, offline evaluation included: a whole argument (ArguAna's
#: queries run to thousands of characters) must be answered, not refused. The HTTP API has
#: its own, configurable and much smaller, limit (`deployments.config.AppArgs.max_query_chars`).
MAX_QUERY_CHARS = 100_000
MAX_K = 1000


@dataclass(slots=True)
class Query:
    """A query with its context. `context` may hold e.g. {"category": "jazz", "locale": "en"}."""

    text: str
    user_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    parse: Parse | None = None  # query understanding done once upstream, for strategies with `uses_parse`


def validate(query: Query | str, k: int) -> Query:
    """Check a query and k before any strategy sees them; raise BadRequest with a clear message."""
    if isinstance(query, str):
        query = Query(text=query)
    if not isinstance(query.text, str):
        raise BadRequest("query must be a string")
    if not query.text.strip():
        raise BadRequest("query is empty")
    if len(query.text) > MAX_QUERY_CHARS:
        raise BadRequest(f"query is {len(query.text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise BadRequest(f"k must be an integer, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return query


def ranked(scored: list[tuple[str, float]], strategy: str, k: int) -> list[Candidate]:
    """Sort (item_id, score) pairs best first (ties by id, so results are deterministic) and cut at k."""
    scored = sorted(scored, key=lambda p: (-p[1], p[0]))[:k]
    return [Candidate.of(strategy, i, r, float(s)) for r, (i, s) in enumerate(scored, 1)]


class Retriever(abc.ABC):
    """Base class of all strategies. Subclasses set `name` and implement the three methods."""

    name: ClassVar[str]
    uses_parse: ClassVar[bool] = False  # True: give it the request's query-understanding parse (Query.parse)

    @classmethod
    @abc.abstractmethod
    def build(cls, dataset: Dataset, out_dir: Path) -> None:
        """Build this strategy's index for `dataset` under `out_dir` (a directory of its own)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, out_dir: Path) -> Retriever:
        """Load a built index from `out_dir`."""

    def retrieve(self, query: Query | str, k: int) -> list[Candidate]:
        """Validate the input, then return at most k candidates, best first."""
        q = validate(query, k)
        return self._retrieve(q, k)

    @abc.abstractmethod
    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        """The strategy itself, on validated input."""

    batched: ClassVar[bool] = False  # True: retrieve_many is cheaper than one call per query (worth batching)

    def retrieve_many(self, queries: list[Query], ks: list[int]) -> list[list[Candidate] | Exception]:
        """Answer several queries at once: one list per query, or the exception (BadRequest, ...)
        that query alone raised. The default calls `retrieve` per query; strategies that set
        `batched` override it (dense encodes the batch in one forward pass)."""
        out: list[list[Candidate] | Exception] = []
        for q, k in zip(queries, ks, strict=True):
            try:
                out.append(self.retrieve(q, k))
            except Exception as exc:  # one bad query does not fail its batch mates
                out.append(exc)
        return out

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (JVM searchers, file handles)."""
