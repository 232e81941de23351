"""The ranker's feature vector over the union of candidates (`ranking.fusion.union`).

Why provenance features: the ranker orders the union of several strategies' lists, and
*which* strategies found an item, and where, is the strongest evidence it has (an item
that BM25, dense and the memory all put at rank 1 is almost surely right). So every
strategy contributes three columns, in the fixed order of `retrievers.STRATEGIES`:
found (0/1), reciprocal rank (1/rank, 0 if absent) and the strategy's raw score (0 if
absent). Raw scores are not comparable across queries (a BM25 score of 20 is great for
one query and poor for another), so two per-query relative scores follow: the gap to the
strategy's best score among the candidates, and the min-max normalised score. Cheap
query, item and query-item text-match features complete the vector.

`FEATURE_NAMES` is the contract between training and serving: a saved model records
it in its manifest and refuses to load if it differs. Change it only together with a
retrain.

Speed: featurizing ~300 candidates takes a few milliseconds. The per-item work
(normalising and tokenising an item's fields) is done once per Item object and cached,
so only the per-query work is repeated.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.model import Item
from core.records import Candidate
from core.text import normalize
from ranking.fusion import rrf_sum, rrf_weight
from retrievers import STRATEGIES

#: Fields treated as an item's title (the first one present is used).
TITLE_FIELDS: tuple[str, ...] = ("title", "name")
#: Fields whose whole value users type as a query (the Schema's entity_fields of the shipped datasets).
ENTITY_FIELDS: tuple[str, ...] = ("title", "name", "artist", "album")


def _strategy_features() -> list[str]:
    return ([f"{s}_{kind}" for s in STRATEGIES for kind in ("found", "rr", "score")]
            + [f"{s}_{kind}" for s in STRATEGIES for kind in ("score_gap", "score_rel")])


#: The feature vector, in order. Per strategy (in `retrievers.STRATEGIES` order):
#:   <s>_found  1 if strategy s retrieved the item, else 0
#:   <s>_rr     1 / rank in s's list, 0 if absent
#:   <s>_score  s's raw score, 0 if absent
#: then, per strategy (same order), relative to that strategy's candidates in this list:
#:   <s>_score_gap  score minus the best score of s among the candidates (<= 0), 0 if absent
#:   <s>_score_rel  (score - min) / (max - min) over s's candidates (1 when they all tie), 0 if absent
#: then
#:   n_found              how many strategies retrieved the item
#:   rrf                  sum over those strategies of fusion.rrf_weight(rank)  (reciprocal-rank fusion)
#:   q_chars, q_tokens    query length in characters and in normalized tokens
#:   item_log_popularity  log1p(popularity)             (0 for items missing from the catalogue)
#:   item_year            release year, 0 when unknown
#:   item_has_year        1 when the item has a year
#:   match_title_frac     share of distinct query tokens found in the item's title
#:   match_text_frac      share of distinct query tokens found in any of the item's fields
#:   match_title_exact    1 when the normalized query equals the normalized title
#:   match_entity_exact   1 when the normalized query equals a normalized entity field
#:                        (title, name, artist, album)
FEATURE_NAMES: list[str] = _strategy_features() + [
    "n_found", "rrf", "q_chars", "q_tokens",
    "item_log_popularity", "item_year", "item_has_year",
    "match_title_frac", "match_text_frac", "match_title_exact", "match_entity_exact",
]
N_FEATURES = len(FEATURE_NAMES)
_STRATEGY_COL = {s: 3 * i for i, s in enumerate(STRATEGIES)}
_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
_RELATIVE_COLS = [(3 * i + 2, _COL[f"{s}_score_gap"], _COL[f"{s}_score_rel"]) for i, s in enumerate(STRATEGIES)]
RRF_COL = _COL["rrf"]


@dataclass(frozen=True, slots=True)
class _ItemText:
    """The query-independent part of an item's features, computed once per Item."""

    log_popularity: float
    year: float
    has_year: float
    title: str
    title_tokens: frozenset[str]
    all_tokens: frozenset[str]
    entities: frozenset[str]


_ITEM_CACHE: dict[int, tuple[Item, _ItemText]] = {}
_ITEM_CACHE_MAX = 200_000  # entries (~1 KB each); a million-item catalogue must not be cached whole


def _item_text(item: Item) -> _ItemText:
    """Cached per-item text features. Keyed by object identity (the Item is kept alive with
    its entry, so an id is never reused while cached); cleared wholesale when it grows too big."""
    key = id(item)
    hit = _ITEM_CACHE.get(key)
    if hit is not None and hit[0] is item:
        return hit[1]
    fields = item.fields or {}
    normed = {f: normalize(v) for f, v in fields.items() if isinstance(v, str) and v}
    title = next((normed[f] for f in TITLE_FIELDS if f in normed), "")
    all_tokens: set[str] = set()
    for v in normed.values():
        all_tokens.update(v.split())
    pop = item.popularity if item.popularity and item.popularity > 0 and math.isfinite(item.popularity) else 0.0
    info = _ItemText(
        log_popularity=math.log1p(pop),
        year=float(item.year) if item.year else 0.0,
        has_year=1.0 if item.year else 0.0,
        title=title,
        title_tokens=frozenset(title.split()),
        all_tokens=frozenset(all_tokens),
        entities=frozenset(normed[f] for f in ENTITY_FIELDS if f in normed),
    )
    if len(_ITEM_CACHE) >= _ITEM_CACHE_MAX:
        _ITEM_CACHE.clear()
    _ITEM_CACHE[key] = (item, info)
    return info


def warm(items: Iterable[Item]) -> None:
    """Precompute the per-item features (optional: featurize does it lazily)."""
    for item in items:
        _item_text(item)


def featurize(query: str, cands: Sequence[Candidate], catalog: Mapping[str, Item]) -> np.ndarray:
    """The feature matrix of `cands` for `query`: float32, shape [len(cands), len(FEATURE_NAMES)].

    Rows follow `cands`; columns follow FEATURE_NAMES. Hits from strategies not in
    `retrievers.STRATEGIES` are ignored; items missing from `catalog` get zero item and
    match features."""
    X = np.zeros((len(cands), N_FEATURES), dtype=np.float32)
    if not cands:
        return X
    q_norm = normalize(query or "")
    q_toks = set(q_norm.split())
    n_q = len(q_toks)
    X[:, _COL["q_chars"]] = len(query or "")
    X[:, _COL["q_tokens"]] = len(q_norm.split())
    c_nfound, c_rrf = _COL["n_found"], _COL["rrf"]
    c_pop, c_year, c_has_year = _COL["item_log_popularity"], _COL["item_year"], _COL["item_has_year"]
    c_tfrac, c_xfrac = _COL["match_title_frac"], _COL["match_text_frac"]
    c_texact, c_eexact = _COL["match_title_exact"], _COL["match_entity_exact"]
    for row, cand in enumerate(cands):
        x = X[row]
        n_found = 0
        for strategy, hit in cand.hits.items():
            col = _STRATEGY_COL.get(strategy)
            if col is None:
                continue
            rank = hit.rank
            x[col] = 1.0
            x[col + 1] = 1.0 / rank if rank > 0 else 0.0
            x[col + 2] = hit.score if math.isfinite(hit.score) else 0.0
            n_found += 1
        x[c_nfound] = n_found
        x[c_rrf] = rrf_sum(cand.hits)
        item = catalog.get(cand.item_id)
        if item is None:
            continue
        info = _item_text(item)
        x[c_pop] = info.log_popularity
        x[c_year] = info.year
        x[c_has_year] = info.has_year
        if n_q:
            x[c_tfrac] = len(q_toks & info.title_tokens) / n_q
            x[c_xfrac] = len(q_toks & info.all_tokens) / n_q
            x[c_texact] = 1.0 if q_norm == info.title else 0.0
            x[c_eexact] = 1.0 if q_norm in info.entities else 0.0
    return _relative_scores(X)


def _relative_scores(X: np.ndarray) -> np.ndarray:
    """Fill each strategy's score_gap and score_rel columns relative to the candidates in X that
    it found (in place; returns X)."""
    for c_score, c_gap, c_rel in _RELATIVE_COLS:
        X[:, c_gap] = 0.0
        X[:, c_rel] = 0.0
        found = X[:, c_score - 2] > 0
        if not found.any():
            continue
        scores = X[found, c_score]
        top, low = scores.max(), scores.min()
        X[found, c_gap] = scores - top
        X[found, c_rel] = (scores - low) / (top - low) if top > low else 1.0
    return X


class PlanFeaturizer:
    """The feature matrix of any sub-plan of one fetch, without the per-candidate loop again.

    `of(budgets)` returns what `featurize(query, within(cands, budgets), catalog)` returns, and
    those candidates: the item features are computed once for the whole fetch, and only the
    columns a plan changes (which strategies found each item, n_found, rrf, and the
    relative-score columns) are recomputed, vectorised. The bench scores hundreds of static
    plans per held-out query with it."""

    def __init__(self, query: str, cands: Sequence[Candidate], catalog: Mapping[str, Item]):
        self.cands = list(cands)
        self.ids = [c.item_id for c in self.cands]
        self.X = featurize(query, self.cands, catalog)
        self.R = np.full((len(self.cands), len(STRATEGIES)), np.inf)
        for i, c in enumerate(self.cands):
            for s, h in c.hits.items():
                if s in _STRATEGY_COL:
                    self.R[i, _STRATEGY_COL[s] // 3] = h.rank

    def rows(self, budgets: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """(indices into `cands` of the items a plan with `budgets` retrieves, their feature matrix):
        `of` without building the plan's Candidate objects, which took about 60 % of its time. The
        retrain's per-support rescoring and the bench's static plans need only the item ids
        (`self.ids`)."""
        b = np.array([budgets.get(s, 0) for s in STRATEGIES], dtype=float)
        M = self.R <= b[None, :]
        rows = np.flatnonzero(M.any(axis=1))
        X, M, R = self.X[rows].copy(), M[rows], self.R[rows]
        for k in range(len(STRATEGIES)):
            X[~M[:, k], 3 * k:3 * k + 3] = 0.0
        X[:, _COL["n_found"]] = M.sum(axis=1)
        X[:, _COL["rrf"]] = np.where(M, rrf_weight(np.where(M, R, 1.0)), 0.0).sum(axis=1)
        return rows, _relative_scores(X)

    def of(self, budgets: Mapping[str, int]) -> tuple[list[Candidate], np.ndarray]:
        rows, X = self.rows(budgets)
        # every selected row has a hit within the budget, so `within` never drops one here
        return [self.cands[i].within(budgets) for i in rows], X
