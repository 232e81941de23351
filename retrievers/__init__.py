"""Retrieval strategies: plain Python classes behind one interface (see `base.Retriever`).

Strategies are imported lazily by name, so that using one (say popularity) does not
start a JVM or load a torch model.
"""
from __future__ import annotations

import importlib

from core.errors import BadRequest
from core.records import Candidate
from retrievers.base import Query, Retriever

STRATEGIES: dict[str, str] = {
    "lexical": "retrievers.lexical:LexicalRetriever",
    "dense": "retrievers.dense:DenseRetriever",
    "memory": "retrievers.memory:MemoryRetriever",
    "popularity": "retrievers.popularity:PopularityRetriever",
    "structured": "retrievers.structured:StructuredRetriever",
    "explore": "retrievers.explore:ExploreRetriever",
}


def strategy_class(name: str) -> type[Retriever]:
    """The class implementing strategy `name`; BadRequest for unknown names."""
    if name not in STRATEGIES:
        raise BadRequest(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["STRATEGIES", "Candidate", "Query", "Retriever", "strategy_class"]
