"""Sharded strategies: one strategy's index split into N shards, each served on its own.

Layout: `DIR/shards/<strategy>/<i>/` holds shard i's index, built from the items whose
`shard_of(id, n) == i` (a CRC32 of the id: stable across runs, machines and Python
versions), and `DIR/shards/<strategy>/shards.json` says how it was split. Each shard is an
ordinary index of its strategy, so any strategy can be sharded; two are made exact:

- lexical: BM25 with the whole catalogue's statistics (`retrievers/lexical_shard.py`);
  every shard also carries the whole catalogue's spelling vocabulary, so all shards
  search the same expanded query;
- dense and dense-static: exact (flat) shards score by inner product, which does not
  depend on the other vectors, so merging shard lists by score gives the unsharded
  answer. The shards reuse the unsharded build's `vectors.npy` when it exists (no second
  encoding).

The scatter-gather and the merge are `engine/sharding.py`; one Serve deployment per shard
is `deployments/app.py` (`shards` in the app's args).
"""
from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np

from core.model import Dataset
from retrievers import Retriever, strategy_class

ROOT = "shards"


def shard_of(item_id: str, n: int) -> int:
    return zlib.crc32(item_id.encode("utf-8")) % n


def shard_dir(index_dir: Path, name: str, shard: int) -> Path:
    return Path(index_dir) / ROOT / name / str(shard)


def _subset(dataset: Dataset, n: int) -> list[Dataset]:
    parts: list[list] = [[] for _ in range(n)]
    for item in dataset.items:
        parts[shard_of(item.id, n)].append(item)
    return [Dataset(name=dataset.name, spec=dataset.spec, items=items, schema=dataset.schema) for items in parts]


def build_shards(dataset: Dataset, index_dir: Path, name: str, n: int, bulk_encode=None, dense=None) -> None:
    """Split strategy `name` of `dataset` into `n` shards under `DIR/shards/<name>/` (`dense`: the
    dense strategies' DenseConfig, default DenseConfig())."""
    root = Path(index_dir) / ROOT / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subsets = _subset(dataset, n)
    cls = strategy_class(name)
    if name == "lexical":
        _lexical_shards(dataset, subsets, root)
    elif getattr(cls, "uses_encoder", None) is not None and hasattr(cls, "write_index"):
        _dense_shards(dataset, subsets, root, cls, Path(index_dir) / name, bulk_encode, dense)
    else:
        for i, sub in enumerate(subsets):
            cls.build(sub, root / str(i))
    (root / "shards.json").write_text(json.dumps({"strategy": name, "n": n, "assignment": "crc32(item id) % n",
                                                  "items": [len(s.items) for s in subsets]}))


def _lexical_shards(dataset: Dataset, subsets: list[Dataset], root: Path) -> None:
    from core.text import tokens
    from retrievers.lexical import LexicalRetriever
    from retrievers.lexical_shard import STATS, merge_stats, write_forward

    parts = []
    for i, sub in enumerate(subsets):
        LexicalRetriever.build(sub, root / str(i))
        parts.append(write_forward(sub, root / str(i)))
    stats = json.dumps(merge_stats(parts), ensure_ascii=False)
    vocab: dict[str, int] = {}
    boosts = dataset.schema.text_fields
    for item in dataset.items:  # the whole catalogue's spelling vocabulary, as LexicalRetriever.build makes it
        for w in set(tokens(" ".join(item.fields.get(f, "") for f in boosts))):
            vocab[w] = vocab.get(w, 0) + 1
    for i in range(len(subsets)):
        (root / str(i) / STATS).write_text(stats)
        if (root / str(i) / "vocab.json").is_file():
            (root / str(i) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))


def _dense_shards(dataset: Dataset, subsets: list[Dataset], root: Path, cls, built: Path, bulk_encode,
                  dense=None) -> None:
    from retrievers.dense import VECTORS, DenseConfig, encode_local, item_text
    from retrievers.encoders import MINILM, EncoderSpec, resolve_precision

    config = dense or DenseConfig()
    fields = dataset.schema.dense_fields or list(dataset.schema.text_fields)
    ids = [it.id for it in dataset.items]
    vecs = None
    if (built / VECTORS).is_file() and (built / "dense.json").is_file():
        meta = json.loads((built / "dense.json").read_text())
        # MiniLM vectors are reused only if encoded in the arithmetic this build would use (auto resolved here)
        built_spec = EncoderSpec.from_json(meta.get("encoder", {"kind": MINILM}))
        same_arithmetic = built_spec.kind != MINILM or built_spec.precision == resolve_precision(config.precision)
        if (meta["ids"] == ids and meta.get("config", {}).get("max_seq_length") == config.max_seq_length
                and same_arithmetic):
            vecs = np.load(built / VECTORS, mmap_mode="r")
    where = {item_id: row for row, item_id in enumerate(ids)}
    for i, sub in enumerate(subsets):
        out = root / str(i)
        out.mkdir(parents=True)
        spec = cls.encoder_spec(out, config)
        if vecs is None:
            texts = [item_text(it, fields) for it in dataset.items]
            vecs = (bulk_encode(texts, spec, config.batch_size) if bulk_encode and cls.uses_encoder
                    else encode_local(texts, spec, config.batch_size, progress=f"{cls.name}: encoding"))
        rows = np.array([where[it.id] for it in sub.items], dtype=np.int64)
        part = np.ascontiguousarray(vecs[rows], dtype=np.float32) if len(rows) else \
            np.zeros((0, vecs.shape[1]), np.float32)
        cls.write_index(out, part, [it.id for it in sub.items], fields, spec, config)


def load_shard(index_dir: Path, name: str, shard: int, n: int) -> Retriever:
    """Shard `shard` of strategy `name` (built with `n` shards)."""
    path = shard_dir(index_dir, name, shard)
    if name == "lexical":
        from retrievers.lexical_shard import LexicalShardRetriever

        return LexicalShardRetriever.load(path)
    return strategy_class(name).load(path)
