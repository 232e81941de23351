"""dense-static: the model2vec model distilled from the local MiniLM, and the IVF index.

The distillation runs once per machine into LTRR_CACHE_DIR (about a minute on 2 cores;
later builds copy it). The built index carries its own copy of the model, so it still
loads after the cache is gone or the index moved."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadRequest
from retrievers.dense import DenseConfig, DenseRetriever
from retrievers.dense_static import DenseStaticRetriever
from tests.helpers.catalogue import ROWS, tiny_dataset

GENRE = {r[0]: r[4] for r in ROWS}


@pytest.fixture(scope="module")
def static(tmp_path_factory) -> DenseStaticRetriever:
    out = tmp_path_factory.mktemp("static") / "dense-static"
    DenseStaticRetriever.build(tiny_dataset(), out)
    return DenseStaticRetriever.load(out)


def test_static_finds_genre_neighbours_and_names_itself(static):
    got = static.retrieve("metal", 3)
    assert GENRE[got[0].item_id] == "metal" and all(c.strategy == "dense-static" for c in got)
    assert static.encoder.dim == 256 and static.meta["encoder"]["kind"] == "static"
    vecs = static.encode_queries(["calm jazz", "", "x"])
    assert np.allclose(np.linalg.norm(vecs[[0, 2]], axis=1), 1.0, atol=1e-5) and not vecs[1].any()


def test_the_index_carries_its_model(static, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(Path(static.meta["encoder"]["model_dir"]).parent, moved)
    again = DenseStaticRetriever.load(moved)
    assert Path(again.meta["encoder"]["model_dir"]).parent == moved
    assert [c.item_id for c in again.retrieve("love story", 5)] == [c.item_id for c in static.retrieve("love story", 5)]


def test_bad_input_is_refused(static):
    with pytest.raises(BadRequest):
        static.retrieve("", 5)


def test_ivf_over_the_same_vectors_agrees_with_exact(static, tmp_path):
    """An IVF index that scans every cell is exact: the same lists as the flat index (31 items make
    one cell: faiss wants 39 training points per cell)."""
    vecs = np.load(Path(static.meta["encoder"]["model_dir"]).parent / "vectors.npy")
    ivf_dir = tmp_path / "ivf"
    ivf_dir.mkdir()
    config = DenseConfig(index="ivf", ivf_nlist=2, ivf_nprobe=2)
    meta = DenseRetriever.write_index(ivf_dir, vecs, static.ids, static.meta["fields"], _spec(static), config)
    assert meta["index"] == "ivf" and meta["ann"]["nlist"] == 1
    ivf = DenseRetriever.load(ivf_dir)
    for q in ("metal", "calm jazz", "love story"):
        v = static.encode_queries([q])
        assert [c.item_id for c in ivf.search_vectors(v, 5)[0]] == [c.item_id for c in static.search_vectors(v, 5)[0]]


def _spec(static):
    from retrievers.encoders import EncoderSpec

    return EncoderSpec.from_json(static.meta["encoder"])
