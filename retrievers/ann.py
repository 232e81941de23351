"""The faiss index behind the dense strategies: exact, HNSW or IVF, chosen by `AnnConfig`.

Up to `approx_threshold` items the index is exact (`IndexFlatIP`: every query scans every
vector; 62 ms per query at a million 256-dimension vectors on one busy core). Above it,
`auto` builds an inverted file (`IVF<nlist>,Flat`, inner product): k-means cells of the
vectors, and a query scans the `nprobe` nearest cells. The defaults come from
`benchmarks/scale.py --stage ann` (README, "Scale"): at a million music-demo vectors,
IVF4096 reached recall@100 >= 0.95 against exact search only when a query scans a quarter
of the cells (nprobe 1024: MiniLM 0.966 in 20.6 ms against 63.1 for exact, dense-static
0.963; at nprobe 256 0.85 and 0.82): music-demo's templated texts put many near-equal items
in many cells. So
`ivf_nprobe` 0 means a quarter of the cells; set it lower to trade recall for latency.
HNSW was not measured at a million (its graph insertion takes many minutes on 2 cores).
"""
from __future__ import annotations

import math
import time

import faiss
import numpy as np
from pydantic import BaseModel, Field


class AnnConfig(BaseModel):
    """How the vectors are indexed and searched."""

    index: str = Field("auto", description="'flat' (exact), 'hnsw', 'ivf', or 'auto': flat up to "
                       "approx_threshold items, ivf above")
    approx_threshold: int = Field(200_000, description="catalogue size above which 'auto' builds an IVF index")
    hnsw_m: int = Field(32, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(40, description="HNSW build breadth")
    hnsw_ef_search: int = Field(128, description="HNSW search breadth; higher is more exact and slower")
    ivf_nlist: int = Field(0, ge=0, description="IVF cells; 0: 4 * sqrt(items), rounded to a power of two")
    ivf_nprobe: int = Field(0, ge=0, description="IVF cells scanned per query; higher is more exact and slower; "
                            "0: a quarter of the cells (recall@100 0.96 at a million music-demo vectors)")
    ivf_codec: str = Field("Flat", description="faiss code of the IVF lists: Flat (float32) or SQfp16 (half "
                           "the memory)")
    train_per_cell: int = Field(64, ge=8, description="k-means training vectors per IVF cell")
    seed: int = Field(0, description="seed of the k-means training sample")


def kind_for(n: int, config: AnnConfig) -> str:
    kind = config.index
    if kind == "auto":
        kind = "ivf" if n > config.approx_threshold else "flat"
    if kind not in ("flat", "hnsw", "ivf"):
        raise ValueError(f"dense index must be 'flat', 'hnsw', 'ivf' or 'auto', got {config.index!r}")
    return kind


def nlist_for(n: int, config: AnnConfig) -> int:
    if config.ivf_nlist:
        return config.ivf_nlist
    return max(1, 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n)))))


def build(vecs: np.ndarray, config: AnnConfig) -> tuple[faiss.Index, dict]:
    """The index over `vecs` (L2-normalised rows) and what was built: kind, parameters, seconds."""
    n, dim = vecs.shape
    kind = kind_for(n, config)
    start = time.perf_counter()
    info: dict = {"kind": kind}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        info.update(m=config.hnsw_m, ef_construction=config.hnsw_ef_construction)
    else:
        nlist = min(nlist_for(n, config), max(1, n // 39))  # faiss wants >= 39 training points per cell
        index = faiss.index_factory(dim, f"IVF{nlist},{config.ivf_codec}", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(config.seed).choice(n, min(n, nlist * config.train_per_cell), replace=False)
        index.train(np.ascontiguousarray(vecs[np.sort(sample)]))
        info.update(nlist=nlist, codec=config.ivf_codec)
    for lo in range(0, n, 100_000):  # in slices: no second full-size copy of the vectors
        index.add(np.ascontiguousarray(vecs[lo:lo + 100_000], dtype=np.float32))
    info["build_s"] = round(time.perf_counter() - start, 2)
    configure(index, config)
    return index, info


def configure(index: faiss.Index, config: AnnConfig) -> None:
    """Set the search-time parameters (they are not stored in the index file)."""
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = config.hnsw_ef_search
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = config.ivf_nprobe or max(1, ivf.nlist // 4)
