"""One shard of the lexical strategy, scored with the whole catalogue's BM25 statistics.

BM25 on a shard alone uses the shard's own IDF and average field length, so a sharded
index would rank differently from the unsharded one. Each shard therefore keeps:

- its own Lucene index (candidates: the shard's local BM25 top `overfetch * k + margin`);
- a forward index: per document and searched field, the analyzed tokens (Lucene's own
  analyzer, through pyserini) and the length Lucene encodes in its norm;
- the global statistics, gathered over every shard at build time: per field the number
  of documents with the field and the sum of their lengths, and per term and field the
  document frequency.

Each candidate is then rescored exactly as Lucene's `BM25Similarity` scores the
unsharded index: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), the document length decoded
from its one-byte norm (`SmallFloat.intToByte4`, called through pyjnius), and
`w - w / (1 + tf / (k1 * (1 - b + b * dl / avgdl)))` with w = field boost * query-term
count * idf, all in float32 as Lucene computes it. A document of the global top k is
missed only if its local rank falls below the over-fetch depth; `tests/live/test_sharding.py`
checks equality with the unsharded index, and `benchmarks/scale.py` measures it.
"""
from __future__ import annotations

import functools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from core.errors import IndexError_
from core.model import Dataset, Item
from core.records import Candidate
from retrievers.base import Query, ranked
from retrievers.lexical import CONTENTS, LexicalRetriever
from retrievers.lucene_env import lucene

FORWARD = "forward.json"
STATS = "global_stats.json"
OVERFETCH, MARGIN = 2, 50  # local candidates per shard: OVERFETCH * k + MARGIN


@functools.lru_cache(maxsize=1)
def _analyzer():
    lucene()  # configures the JVM first
    from pyserini.analysis import Analyzer, get_lucene_analyzer

    return Analyzer(get_lucene_analyzer())


def analyze(text: str) -> list[str]:
    """The tokens Lucene indexes and searches for `text` (the searcher's default English analyzer)."""
    return list(_analyzer().analyze(text)) if text.strip() else []


@functools.lru_cache(maxsize=1)
def _length_codec() -> tuple:
    from jnius import autoclass

    small_float = autoclass("org.apache.lucene.util.SmallFloat")
    table = np.array([small_float.byte4ToInt(b if b < 128 else b - 256) for b in range(256)], dtype=np.float32)
    return small_float, table


def norm_byte(length: int) -> int:
    """Lucene's one-byte norm of a field of `length` tokens (SmallFloat.intToByte4), as 0..255."""
    return int(_length_codec()[0].intToByte4(int(length))) & 0xFF


def searched_texts(item: Item, meta: dict, boosts: dict[str, float]) -> dict[str, str]:
    """The text of each searched Lucene field of `item`, as `LexicalRetriever.build` indexed it."""
    mode = meta["config"]["mode"]
    out: dict[str, str] = {}
    for field in meta["search_fields"]:
        if mode == "flat" or (field == CONTENTS and "text" not in boosts):
            out[field] = " ".join(item.fields.get(f, "") for f in boosts).strip()
        else:
            out[field] = item.fields.get("text" if field == CONTENTS else field, "")
    return out


def write_forward(dataset: Dataset, out_dir: Path) -> dict:
    """Write the shard's forward index; returns its statistics (to be summed over shards)."""
    meta = json.loads((out_dir / "lexical.json").read_text())
    docs: dict[str, dict[str, list[str]]] = {}
    stats: dict = {"fields": {f: {"doc_count": 0, "sum_ttf": 0, "df": {}} for f in meta["search_fields"]}}
    for item in dataset.items:
        doc = {}
        for field, text in searched_texts(item, meta, dataset.schema.text_fields).items():
            toks = analyze(text)
            if not toks:
                continue
            doc[field] = toks
            fs = stats["fields"][field]
            fs["doc_count"] += 1
            fs["sum_ttf"] += len(toks)
            for t in set(toks):
                fs["df"][t] = fs["df"].get(t, 0) + 1
        docs[item.id] = doc
    (out_dir / FORWARD).write_text(json.dumps(docs, ensure_ascii=False))
    return stats


def merge_stats(parts: list[dict]) -> dict:
    out: dict = {"fields": {}}
    for part in parts:
        for field, fs in part["fields"].items():
            g = out["fields"].setdefault(field, {"doc_count": 0, "sum_ttf": 0, "df": {}})
            g["doc_count"] += fs["doc_count"]
            g["sum_ttf"] += fs["sum_ttf"]
            for t, n in fs["df"].items():
                g["df"][t] = g["df"].get(t, 0) + n
    return out


class LexicalShardRetriever(LexicalRetriever):
    """BM25 over one shard, scored with global statistics (see the module docstring)."""

    name = "lexical"

    def __init__(self, out_dir: Path, meta: dict, forward: dict, stats: dict):
        super().__init__(out_dir, meta)
        k1, b = np.float32(self.config.k1), np.float32(self.config.b)
        table = _length_codec()[1]
        self.fields_stats = stats["fields"]
        self.norm_inverse: dict[str, np.ndarray] = {}  # field -> 1 / (k1 (1 - b + b dl / avgdl)) per norm byte
        for field, fs in self.fields_stats.items():
            avgdl = np.float32(fs["sum_ttf"] / fs["doc_count"]) if fs["doc_count"] else np.float32(1)
            self.norm_inverse[field] = np.float32(1) / (k1 * ((np.float32(1) - b) + b * table / avgdl))
        self.docs: dict[str, dict[str, tuple[Counter, int]]] = {
            doc_id: {f: (Counter(toks), norm_byte(len(toks))) for f, toks in fields.items()}
            for doc_id, fields in forward.items()}

    @classmethod
    def load(cls, out_dir: Path) -> LexicalShardRetriever:
        paths = [out_dir / "lexical.json", out_dir / FORWARD, out_dir / STATS]
        if not all(p.is_file() for p in paths) or not (out_dir / "lucene").is_dir():
            raise IndexError_(f"no lexical shard at {out_dir} (run `ltrr index --shards lexical=N`)")
        meta, forward, stats = (json.loads(p.read_text()) for p in paths)
        return cls(out_dir, meta, forward, stats)

    def idf(self, field: str, term: str) -> np.float32:
        fs = self.fields_stats[field]
        df = fs["df"].get(term, 0)
        return np.float32(math.log(1 + (fs["doc_count"] - df + 0.5) / (df + 0.5)))

    def rescore(self, text: str, doc_ids: list[str], fields: dict[str, float]) -> list[float]:
        """Global-statistics BM25 of `doc_ids` for the query `text` (as Lucene scores it unsharded)."""
        qtf = Counter(analyze(text))
        total = np.zeros(len(doc_ids), dtype=np.float64)
        for field, boost in (fields or {CONTENTS: 1.0}).items():
            if field not in self.fields_stats:
                continue
            per_field = np.zeros(len(doc_ids), dtype=np.float64)
            for term, count in qtf.items():
                if not self.fields_stats[field]["df"].get(term):
                    continue
                w = np.float32(np.float32(boost) * np.float32(count)) * self.idf(field, term)
                tf = np.zeros(len(doc_ids), dtype=np.float32)
                inv = np.zeros(len(doc_ids), dtype=np.float32)
                for row, doc_id in enumerate(doc_ids):
                    entry = self.docs.get(doc_id, {}).get(field)
                    if entry is not None and entry[0].get(term):
                        tf[row] = entry[0][term]
                        inv[row] = self.norm_inverse[field][entry[1]]
                score = w - w / (np.float32(1) + tf * inv)
                per_field += np.where(tf > 0, score, np.float32(0)).astype(np.float64)
            total += per_field.astype(np.float32).astype(np.float64)
        return [float(np.float32(s)) for s in total]

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        prior = self.config.prior_weight if self.popularity else 0.0
        fields = {} if self.fields == {CONTENTS: 1.0} else self.fields
        text = self._bounded(self.expand(self._bounded(query.text, fields)), fields)
        depth = max(k, self.config.prior_depth) if prior else k
        hits = self.searcher.search(text, OVERFETCH * depth + MARGIN, fields=fields)
        ids = [h.docid for h in hits]
        scores = self.rescore(text, ids, fields)
        scored = sorted(zip(ids, scores, strict=True), key=lambda p: (-p[1], p[0]))[:depth]
        scored = [(i, s + prior * math.log1p(self.popularity.get(i, 0.0))) for i, s in scored]
        return ranked(scored, self.name, k)
