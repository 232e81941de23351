"""Exploration: a seeded sample of long-tail and new items.

Every other strategy favours what is already popular or already clicked, so their logs
never say whether an unseen item would have been liked. This strategy shows a few
such items on purpose, supplying the counterfactual data that off-policy evaluation and
bandits need.

The pool: items below the catalogue's median popularity, or released in the last two
years (year >= max year - 1). When the catalogue has no popularity (all zero, as in
BEIR data) the whole catalogue is the pool. For a query, ceil(k/2) items are sampled from
pool items sharing a normalized word with it (entity and category fields), the rest
uniformly from the pool, without replacement. The generator is seeded from a stable
hash of (seed, normalized query, context["explore_round"]), so the same inputs give the
same sample. Scores are 1/rank.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from core.errors import BadRequest, IndexError_
from core.model import Dataset
from core.records import Candidate
from core.text import normalize
from retrievers.base import Query, Retriever, ranked
from retrievers.storage import read_json, read_manifest, write_json, write_manifest
from retrievers.understanding import STOPWORDS

FORMAT = 1
RECENT_YEARS = 2  # year >= max year - (RECENT_YEARS - 1) counts as new


def exploration_pool(dataset: Dataset) -> list[str]:
    """Ids of the long-tail and new items, sorted. Long tail = popularity below the median;
    when the median is also the minimum (many ties at the bottom), popularity <= median."""
    items = dataset.items
    if not items:
        return []
    pop = np.asarray([max(0.0, it.popularity) for it in items], dtype=np.float64)
    if not pop.any():
        return sorted(it.id for it in items)
    median = float(np.percentile(pop, 50))
    tail = pop <= median if median <= pop.min() else pop < median
    years = [it.year for it in items if it.year is not None]
    recent = (max(years) - (RECENT_YEARS - 1)) if years else None
    pool = [it.id for it, t in zip(items, tail) if t or (recent is not None and it.year is not None
                                                          and it.year >= recent)]
    return sorted(pool)


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from a SHA-256 of the parts: equal across runs and processes
    (unlike hash(), which is salted per process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


class ExploreRetriever(Retriever):
    """Seeded samples from the long-tail/new pool, half of them sharing a word with the query."""

    name = "explore"

    def __init__(self, pool: list[str], tokens: dict[str, list[int]], seed: int = 0, fingerprint: str = "") -> None:
        self.fingerprint = fingerprint
        self.seed = int(seed)
        self._pool = list(pool)
        self._tokens = {t: np.asarray(ix, dtype=np.int64) for t, ix in tokens.items()}

    @property
    def pool(self) -> list[str]:
        """The exploration pool (item ids, sorted)."""
        return list(self._pool)

    # -- build / persist ------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path, seed: int = 0) -> None:
        pool = exploration_pool(dataset)
        where = {i: n for n, i in enumerate(pool)}
        schema = dataset.schema
        fields = list(dict.fromkeys(schema.entity_fields + schema.category_fields))
        tokens: dict[str, set[int]] = {}
        for item in dataset.items:
            n = where.get(item.id)
            if n is None:
                continue
            for f in fields:
                for tok in normalize(item.fields.get(f, "") or "").split():
                    if tok not in STOPWORDS:
                        tokens.setdefault(tok, set()).add(n)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        write_json(out / "explore.json", {"pool": pool, "tokens": {t: sorted(ix) for t, ix in sorted(tokens.items())}})
        write_manifest(out, cls.name, FORMAT, dataset.fingerprint(), seed=int(seed), n_items=len(dataset.items),
                       pool_size=len(pool))

    @classmethod
    def load(cls, out_dir: Path, seed: int | None = None) -> ExploreRetriever:
        """Load an explore index; `seed` overrides the one it was built with."""
        out = Path(out_dir)
        manifest = read_manifest(out, cls.name, FORMAT)
        data = read_json(out / "explore.json")
        try:
            return cls(data["pool"], data["tokens"], manifest.get("seed", 0) if seed is None else seed,
                       manifest.get("fingerprint", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexError_(f"explore index at {out} is malformed ({exc}); rebuild it") from None

    # -- retrieval ------------------------------------------------------------------
    def _union(self, postings: list[np.ndarray]) -> np.ndarray:
        """The pool positions in any of `postings` (each sorted, without repeats), ascending.
        A mask over the pool, not a sort of the concatenation: at a million tracks a common
        word's posting holds hundreds of thousands of positions."""
        if len(postings) <= 1:
            return postings[0] if postings else np.empty(0, dtype=np.int64)
        mask = np.zeros(len(self._pool), dtype=bool)
        for p in postings:
            mask[p] = True
        return np.flatnonzero(mask)

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        if not self._pool:
            return []
        explore_round = (query.context or {}).get("explore_round", 0)
        if isinstance(explore_round, bool) or not isinstance(explore_round, int):
            raise BadRequest(f"context explore_round must be an integer, got {explore_round!r}")
        text = normalize(query.text)
        rng = np.random.default_rng(stable_seed(self.seed, text, explore_round))
        k = min(k, len(self._pool))
        postings = [self._tokens[t] for t in dict.fromkeys(text.split()) if t in self._tokens]
        matched = self._union(postings)
        n_matched = min(math.ceil(k / 2), len(matched))
        chosen = [int(i) for i in rng.choice(matched, size=n_matched, replace=False)] if n_matched else []
        taken = set(chosen)
        need = k - len(chosen)
        if need:
            # draw enough that, after dropping items already chosen, `need` remain
            draw = rng.choice(len(self._pool), size=min(len(self._pool), need + len(taken)), replace=False)
            chosen += [int(i) for i in draw if int(i) not in taken][:need]
        return ranked([(self._pool[i], 1.0 / r) for r, i in enumerate(chosen, 1)], self.name, k)
