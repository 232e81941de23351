"""Query groups: the candidates of one query (or one logged request), their features and labels;
and the nDCG@10 comparisons that tell whether a ranker beats the orders it would replace.

A group is what LambdaMART trains on and what evaluation scores. From qrels, a group is
built by running the strategies in-process (`candidates_for`) for a judged query; from
logs, by reading a request's logged candidates and the feedback events joined on its
request_id (nothing is retrieved again).

Metrics come from ir-measures; every ordering (ranker, RRF, each strategy alone) is scored
over the same candidates, with item ids as 1/position so ties never reorder anything.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ir_measures
import numpy as np
from ir_measures import nDCG
from tqdm import tqdm

from core.credit import event_items
from core.errors import BadRequest
from core.events import EVENT_LABELS
from core.model import Dataset, Item
from core.records import Candidate, EventRecord, RequestRecord
from ranking.features import featurize
from ranking.fusion import union
from ranking.model import FallbackRanker, Ranker, by_score
from retrievers import STRATEGIES, Query, Retriever
from retrievers.base import MAX_K
from retrievers.index import IndexHandle, check_same_data

DEFAULT_BUDGETS: dict[str, int] = {"lexical": 100, "dense": 100, "memory": 25, "popularity": 25,
                                   "structured": 50, "explore": 10}
NDCG10 = nDCG @ 10


@dataclass
class Group:
    """One query's candidates, features and labels. `qid` is the query id or the request id."""

    qid: str
    query: str
    cands: list[Candidate]
    X: np.ndarray
    y: np.ndarray

    @property
    def has_positive(self) -> bool:
        return bool((self.y > 0).any())


# -- candidates -------------------------------------------------------------------------------

_LOADED: dict[tuple[str, str, str], Retriever] = {}


def load_retrievers(index: IndexHandle, names: Iterable[str]) -> dict[str, Retriever]:
    """The built strategies among `names`, loaded once per process and index build."""
    out = {}
    for name in names:
        if name not in index.manifest.get("strategies", {}):
            continue
        key = (str(Path(index.dir).resolve()), name, str(index.manifest["strategies"][name].get("built_at")))
        if key not in _LOADED:
            _LOADED[key] = index.load(name)
        out[name] = _LOADED[key]
    return out


def candidates_for(index: IndexHandle, query: str | Query, budgets: Mapping[str, int] | None = None
                   ) -> list[Candidate]:
    """Run the built strategies with their budgets (0 or absent: not called; not built: skipped)
    in-process and return the union of their candidates, in RRF order."""
    got = candidates_many(index, [query], budgets)[0]
    if isinstance(got, Exception):
        raise got
    return got


def candidates_many(index: IndexHandle, queries: Sequence[str | Query], budgets: Mapping[str, int] | None = None
                    ) -> list[list[Candidate] | Exception]:
    """`candidates_for` of each query, with each strategy asked for all of them at once
    (`Retriever.retrieve_many`: dense encodes them in one forward pass, which on 2 cores costs
    a few ms per query instead of about 15 one at a time). A query that a strategy refuses
    (BadRequest, e.g. too long) gets that exception instead of a list; the others are unaffected."""
    budgets = DEFAULT_BUDGETS if budgets is None else budgets
    qs = [Query(text=q) if isinstance(q, str) else q for q in queries]
    wanted = [s for s in STRATEGIES if budgets.get(s, 0) > 0]
    results = {name: r.retrieve_many(qs, [min(int(budgets[name]), MAX_K)] * len(qs))
               for name, r in load_retrievers(index, wanted).items()}
    out: list[list[Candidate] | Exception] = []
    for row in range(len(qs)):
        per = {name: got[row] for name, got in results.items()}
        failed = next((e for e in per.values() if isinstance(e, Exception)), None)
        out.append(failed if failed is not None else union(per))  # type: ignore[arg-type]
    return out


def qrels_groups(index: IndexHandle, dataset: Dataset, split: str, budgets: Mapping[str, int] | None = None,
                 catalog: Mapping[str, Item] | None = None, progress: bool = True, batch: int = 64) -> list[Group]:
    """One group per judged query of `split`: candidates, features, labels = qrels grade (0 if unjudged).
    Groups without any relevant candidate are kept (evaluation needs them); training drops them.
    Candidates come `batch` queries at a time (`candidates_many`)."""
    check_same_data(index.manifest, dataset, index.dir)
    qs = dataset.split(split)
    catalog = index.catalog() if catalog is None else catalog
    judged = list(qs.judged().items())
    groups = []
    with tqdm(total=len(judged), desc=f"candidates {split}", unit="q", disable=not progress, mininterval=1.0) as bar:
        for lo in range(0, len(judged), batch):
            chunk = judged[lo:lo + batch]
            for (qid, text), cands in zip(chunk, candidates_many(index, [t for _, t in chunk], budgets), strict=True):
                if isinstance(cands, BadRequest):
                    continue  # e.g. an over-long query: no strategy would answer it at serve time either
                if isinstance(cands, Exception):
                    raise cands
                grades = qs.qrels.get(qid, {})
                y = np.array([max(0, int(grades.get(c.item_id, 0))) for c in cands], dtype=np.float32)
                groups.append(Group(qid, text, cands, featurize(text, cands, catalog), y))
            bar.update(len(chunk))
    return groups


def _click_labels(events: Iterable[EventRecord], via: Mapping[str, Mapping[str, Sequence[str]]]
                  ) -> dict[str, dict[str, int]]:
    """request id -> item id -> label, the max over the events on that item (`core.events.EVENT_LABELS`:
    like 3, play 2, click 1, skip 0). An event on an entity labels each result item it was shown
    through (`via`: request id -> entity id -> via items) with its type's label (`core.credit`)."""
    out: dict[str, dict[str, int]] = {}
    for e in events:
        label = EVENT_LABELS.get(e.type)
        if label is None:
            continue
        items = out.setdefault(e.request_id, {})
        for item in event_items(e, via.get(e.request_id, {})):
            items[item] = max(items.get(item, 0), label)
    return out


def click_groups(requests: Sequence[RequestRecord], events: Sequence[EventRecord], catalog: Mapping[str, Item],
                 unshown: Literal["after", "drop"] = "after") -> list[Group]:
    """One group per request with at least one positive event; rows in the order shown, then
    (unless dropped) the candidates not shown, in their logged order. Features come from the
    logged provenance (`hits`): nothing is retrieved again. Events on a shown entity label the
    results it was shown through (`core.credit`)."""
    labels = _click_labels(events, {r.request_id: r.entity_via() for r in requests if r.entities})
    groups = []
    for req in requests:
        got = labels.get(req.request_id)
        if not got or max(got.values()) <= 0:
            continue
        by_id = {c.item_id: c for c in req.served()}
        shown = list(dict.fromkeys(req.shown))
        rows = [by_id.get(i) or Candidate(item_id=i, hits={}) for i in shown]
        if unshown == "after":
            seen = set(shown)
            rows += [c for c in req.served() if c.item_id not in seen]
        y = np.array([got.get(c.item_id, 0) for c in rows], dtype=np.float32)
        groups.append(Group(req.request_id, req.query, rows, featurize(req.query, rows, catalog), y))
    return groups


# -- metrics ----------------------------------------------------------------------------------

def ndcg10(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]]) -> float:
    """Mean nDCG@10 (ir-measures) over the queries of `qrels`; a query without a ranking scores 0.
    Rankings are item ids best first; scores 1/position keep that exact order."""
    if not qrels:
        return 0.0
    run = {q: {i: 1.0 / p for p, i in enumerate(r, 1)} for q, r in rankings.items() if r and q in qrels}
    per_query = {m.query_id: m.value for m in ir_measures.iter_calc([NDCG10], dict(qrels), run)}
    return round(float(sum(per_query.get(q, 0.0) for q in qrels) / len(qrels)), 4)


def _order(scores: np.ndarray, cands: Sequence[Candidate]) -> list[str]:
    return [item_id for item_id, _ in by_score(cands, scores)]


def rankings(groups: Sequence[Group], model: Ranker) -> dict[str, list[str]]:
    return {g.qid: _order(model.predict(g.X), g.cands) for g in groups}


def strategy_only(groups: Sequence[Group], strategy: str) -> dict[str, list[str]]:
    """Each group's candidates found by `strategy`, in that strategy's order: the strategy alone."""
    return {g.qid: [c.item_id for c in sorted((c for c in g.cands if strategy in c.hits),
                                              key=lambda c: c.hits[strategy].rank)] for g in groups}


def compare(groups: Sequence[Group], qrels: Mapping[str, Mapping[str, int]], model: Ranker) -> dict[str, float]:
    """nDCG@10 of the ranker, the RRF order and each strategy alone, all over the same candidates."""
    qrels = {g.qid: qrels.get(g.qid, {}) for g in groups}
    out = {"ranker": ndcg10(qrels, rankings(groups, model)),
           "rrf": ndcg10(qrels, rankings(groups, FallbackRanker()))}
    found = {s for g in groups for c in g.cands for s in c.hits}
    for s in (s for s in STRATEGIES if s in found):
        out[s] = ndcg10(qrels, strategy_only(groups, s))
    return out


def evaluate_ranker(model: Ranker, index: IndexHandle, dataset: Dataset, split: str = "test",
                    budgets: Mapping[str, int] | None = None, progress: bool = True) -> dict[str, float]:
    """Retrieve candidates for the judged queries of `split` and compare the ranker with RRF and
    each strategy alone on them (nDCG@10 by qrels). Keys: ranker, rrf, <strategy>, queries."""
    groups = qrels_groups(index, dataset, split, budgets, progress=progress)
    out: dict[str, float] = compare(groups, dataset.split(split).qrels, model)
    out["queries"] = len(groups)
    return out
