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
#: Built-in strategies that are built and served only when named (`ltrr index --strategies`,
#: the app's `strategies`). They are not in STRATEGIES, whose order fixes the ranker's feature
#: columns, the bandit's default action space and the bench's static-plan grid; served, they
#: join the policy's action space as custom strategies do (README, "Scale").
OPTIONAL_STRATEGIES: dict[str, str] = {
    "dense-static": "retrievers.dense_static:DenseStaticRetriever",
}
KNOWN_STRATEGIES: dict[str, str] = {**STRATEGIES, **OPTIONAL_STRATEGIES}


def strategy_class(name: str) -> type[Retriever]:
    """The class implementing strategy `name`; BadRequest for unknown names."""
    if name not in KNOWN_STRATEGIES:
        raise BadRequest(f"unknown strategy {name!r}; known: {', '.join(KNOWN_STRATEGIES)}")
    module, cls = KNOWN_STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["KNOWN_STRATEGIES", "OPTIONAL_STRATEGIES", "STRATEGIES", "Candidate", "Query", "Retriever", "strategy_class"]
