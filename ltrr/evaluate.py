"""Offline retrieval evaluation: one strategy (or RRF of lexical and dense) over a split.

Metrics come from ir-measures (the same trec_eval code Pyserini's regressions use):
nDCG@10, R@100 and RR@10 (reported as mrr@10). Latency is measured per query around
the strategy's `retrieve` call, query encoding included.
"""
from __future__ import annotations

import time
from collections import defaultdict

import ir_measures
import numpy as np
from ir_measures import RR, R, nDCG
from tqdm import tqdm

from core.model import Dataset
from core.records import Candidate
from ranking.fusion import rrf
from retrievers import Query
from retrievers.index import IndexHandle, check_same_data

MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
RRF_DEPTH = 1000


def _score(qrels: dict, run: dict) -> dict[str, float]:
    """Mean over the queries of `qrels`; a query with no candidates counts as 0 (ir-measures does this)."""
    run = {q: r for q, r in run.items() if r}
    if not run:
        return {name: 0.0 for name in MEASURES}
    agg = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, run)
    return {name: round(float(agg[m]), 4) for name, m in MEASURES.items()}


def evaluate(index: IndexHandle, dataset: Dataset, split: str, strategy: str, k: int = 100,
             progress: bool = True) -> dict:
    """Evaluate `strategy` ('rrf' fuses lexical and dense) on the judged queries of `split`."""
    check_same_data(index.manifest, dataset, index.dir)
    qs = dataset.split(split)
    queries = qs.judged()
    if strategy == "rrf":
        parts = [index.load("lexical"), index.load("dense")]
        depth = max(k, RRF_DEPTH)

        def search(q: Query) -> list[Candidate]:
            return rrf([p.retrieve(q, depth) for p in parts], k)
    else:
        retriever = index.load(strategy)

        def search(q: Query) -> list[Candidate]:
            return retriever.retrieve(q, k)

    run: dict[str, dict[str, float]] = {}
    latencies = []
    for qid, text in tqdm(queries.items(), desc=f"eval {strategy}", unit="q", disable=not progress,
                          mininterval=1.0):
        start = time.perf_counter()
        cands = search(Query(text=text))
        latencies.append((time.perf_counter() - start) * 1000)
        # ir-measures sorts by score; use reciprocal rank so the strategy's own order (with ties broken) holds
        run[qid] = {c.item_id: 1.0 / c.rank for c in cands}
    result: dict = _score({q: qs.qrels[q] for q in queries}, run)
    result["queries"] = len(queries)
    lat = np.array(latencies) if latencies else np.zeros(1)
    result["latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 3),
                            "p99": round(float(np.percentile(lat, 99)), 3)}
    if qs.intents:
        by_intent: dict[str, list[str]] = defaultdict(list)
        for qid in queries:
            by_intent[qs.intents.get(qid, "unknown")].append(qid)
        result["by_intent"] = {}
        for intent, qids in sorted(by_intent.items()):
            result["by_intent"][intent] = _score({q: qs.qrels[q] for q in qids}, {q: run[q] for q in qids})
    result["strategy"] = strategy
    result["split"] = split
    return result
