"""Lexical BM25 over fields, with an optional popularity prior (Lucene through pyserini).

Two layouts, chosen by `Schema.lexical_mode` (or overridden in `LexicalConfig`):
- flat: every text field concatenated into Lucene's `contents` field. On BEIR data this
  is Pyserini's "flat" configuration (SciFact nDCG@10 0.679).
- multifield: one Lucene field per text field, searched together with per-field boosts.
  A field named `text` becomes Lucene's `contents` (Anserini requires one), so BEIR's
  title+text gives Pyserini's "multifield" configuration (SciFact 0.665).

The popularity prior re-scores the top `prior_depth` BM25 hits with
`bm25 + prior_weight * log1p(popularity)`, so that among equally good textual matches
the popular item wins (what users of a music or product search expect).

Typo tolerance (`spelling`, on by default for catalogues with category fields, such as
music-demo and Spotify; off for BEIR collections, whose published BM25 figures it would
change): a query word that no item uses is also searched as its closest catalogue word
(`retrievers.spelling.Speller`), so "tayler love" searches "tayler taylor love". The
vocabulary (word -> items using it, over the text fields) is written at build time to
`vocab.json`; an index built without it searches the query as typed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, Field
from tqdm import tqdm

from core.errors import IndexError_
from core.model import Dataset
from core.records import Candidate
from core.text import tokens
from retrievers.base import Query, Retriever, ranked
from retrievers.lucene_env import lucene
from retrievers.spelling import Speller

CONTENTS = "contents"


class LexicalConfig(BaseModel):
    """How the BM25 index is built and searched."""

    mode: str | None = Field(None, description="'flat' or 'multifield'; None takes the dataset schema's choice")
    k1: float = Field(0.9, description="BM25 k1 (Pyserini's BEIR setting)")
    b: float = Field(0.4, description="BM25 b (Pyserini's BEIR setting)")
    prior_weight: float = Field(0.0, description="weight of log1p(popularity) added to BM25; 0 turns the prior off")
    prior_depth: int = Field(200, description="how many BM25 hits the prior re-scores")
    spelling: bool | None = Field(None, description="also search the closest catalogue word of each unknown "
                                  "query word; None: on when the schema has category fields")


MAX_CLAUSES = 1000  # below Lucene's default BooleanQuery limit of 1,024


class LexicalRetriever(Retriever):
    """BM25 over a pyserini Lucene index."""

    name = "lexical"

    def __init__(self, out_dir: Path, meta: dict):
        self.dir = out_dir
        self.meta = meta
        self.config = LexicalConfig(**meta["config"])
        self.fields: dict[str, float] = meta["search_fields"]
        # the prior's popularity table is kept only when the prior is on (a million entries otherwise idle)
        popularity = meta.pop("popularity", {})
        self.popularity: dict[str, float] = popularity if self.config.prior_weight else {}
        self.searcher = lucene().LuceneSearcher(str(out_dir / "lucene"))
        self.searcher.set_bm25(self.config.k1, self.config.b)
        vocab_path = out_dir / "vocab.json"
        self.speller = Speller(json.loads(vocab_path.read_text())) if self.config.spelling and vocab_path.is_file() \
            else None

    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path, config: LexicalConfig | None = None) -> None:
        config = config or LexicalConfig()
        mode = config.mode or dataset.schema.lexical_mode
        if mode not in ("flat", "multifield"):
            raise ValueError(f"lexical mode must be 'flat' or 'multifield', got {mode!r}")
        spelling = bool(dataset.schema.category_fields) if config.spelling is None else config.spelling
        config = config.model_copy(update={"mode": mode, "spelling": spelling})
        boosts = dataset.schema.text_fields
        if mode == "flat":
            lucene_fields: dict[str, str] = {}
            search_fields = {CONTENTS: 1.0}
        else:
            lucene_fields = {f: (CONTENTS if f == "text" else f) for f in boosts}
            search_fields = {lucene_fields[f]: w for f, w in boosts.items()}
        out_dir.mkdir(parents=True, exist_ok=True)
        extra = sorted(v for v in lucene_fields.values() if v != CONTENTS)
        args = ["-index", str(out_dir / "lucene")] + (["-fields", *extra] if extra else [])
        indexer = lucene().LuceneIndexer(args=args, threads=1)
        batch: list[str] = []
        for item in tqdm(dataset.items, desc="lexical: indexing", unit="doc", mininterval=1.0):
            doc = {"id": item.id}
            if mode == "flat":
                doc[CONTENTS] = " ".join(item.fields.get(f, "") for f in boosts).strip()
            else:
                for f, lf in lucene_fields.items():
                    doc[lf] = item.fields.get(f, "")
                doc.setdefault(CONTENTS, " ".join(item.fields.get(f, "") for f in boosts).strip())
            batch.append(json.dumps(doc, ensure_ascii=False))
            if len(batch) >= 1000:
                indexer.add_batch_raw(batch)
                batch = []
        if batch:
            indexer.add_batch_raw(batch)
        indexer.close()
        if "text" not in boosts and mode == "multifield":
            search_fields.setdefault(CONTENTS, 0.0)
            search_fields = {f: w for f, w in search_fields.items() if w > 0}
        meta = {"config": config.model_dump(), "search_fields": search_fields,
                "popularity": {it.id: it.popularity for it in dataset.items if it.popularity > 0}}
        if spelling:
            vocab: dict[str, int] = {}
            for item in dataset.items:
                for w in set(tokens(" ".join(item.fields.get(f, "") for f in boosts))):
                    vocab[w] = vocab.get(w, 0) + 1
            (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (out_dir / "lexical.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, out_dir: Path) -> LexicalRetriever:
        meta_path = out_dir / "lexical.json"
        if not meta_path.exists() or not (out_dir / "lucene").is_dir():
            raise IndexError_(f"no lexical index at {out_dir} (run `ltrr index` first)")
        return cls(out_dir, json.loads(meta_path.read_text()))

    def _bounded(self, text: str, fields: dict[str, float]) -> str:
        """The query within Lucene's clause limit: a bag-of-words query has a clause per distinct
        term and field, and Lucene refuses more than 1,024 (TooManyClauses). A longer query keeps
        its first distinct words, with room for the analyzer splitting a word in two."""
        cap = MAX_CLAUSES // max(1, len(fields)) // 2
        words = list(dict.fromkeys(text.split()))
        return text if len(words) <= cap else " ".join(words[:cap])

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        prior = self.config.prior_weight if self.popularity else 0.0
        depth = max(k, self.config.prior_depth) if prior else k
        fields = {} if self.fields == {CONTENTS: 1.0} else self.fields
        text = self._bounded(self.expand(self._bounded(query.text, fields)), fields)  # expansions stay bounded too
        hits = self.searcher.search(text, depth, fields=fields)
        scored = [(h.docid, h.score + prior * math.log1p(self.popularity.get(h.docid, 0.0))) for h in hits]
        return ranked(scored, self.name, k)

    def expand(self, text: str) -> str:
        """The query BM25 searches: as typed, plus the correction of each word no item uses."""
        if self.speller is None:
            return text
        fixes = [fixed[0] for w in tokens(text) if (fixed := self.speller.correct(w))]
        return " ".join([text, *fixes])

    def close(self) -> None:
        self.searcher.close()
