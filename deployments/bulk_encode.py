"""Embed a catalogue with Ray Data, so that every node of a cluster shares the encoding.

`ltrr index --encode-with ray` passes `ray_bulk_encode` to the dense build
(`retrievers/dense.py`): the texts become a Ray Dataset (an Arrow table of row number and
text), `map_batches` runs a pool of encoder actors (`concurrency` of them, one CPU and one
torch thread each, each loading the encoder once), and the driver scatters the embedded
batches back into row order. On one 2-core machine this is no faster than encoding in
process (the cores are the limit); on a cluster it scales with the CPUs of the nodes.

Ray is started here only if no cluster is connected (`ray.init()` reuses a running one,
`address="auto"` or `RAY_ADDRESS` joins a cluster); the caller stops what it started.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import ray

from retrievers.encoders import EncoderSpec, get_encoder


class _EncodeBatch:
    """One encoder actor of the map_batches pool."""

    def __init__(self, spec: dict, batch_size: int) -> None:
        os.environ["LTRR_TORCH_THREADS"] = "1"  # one CPU per actor: scale with actors, not threads
        self.encoder = get_encoder(EncoderSpec.from_json(spec))
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vecs = self.encoder.encode([str(t) for t in batch["text"]], self.batch_size)
        return {"row": batch["row"], "vec": vecs}


def ray_bulk_encode(texts: list[str], spec: EncoderSpec, batch_size: int, concurrency: int | None = None,
                    rows_per_batch: int = 1024) -> np.ndarray:
    """Embeddings of `texts`, in order, computed by a pool of Ray Data actors."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrency = concurrency or max(1, cpus)
    # blocks cut here, on the driver: a repartition would be a task that needs a CPU the encoder
    # actors (one CPU each, as many as the cluster has) never give back
    n_blocks = max(concurrency * 4, len(texts) // 20_000 + 1)
    step = -(-len(texts) // n_blocks)
    blocks = [pa.table({"row": np.arange(lo, min(lo + step, len(texts)), dtype=np.int64),
                        "text": pa.array(texts[lo:lo + step], pa.string())}) for lo in range(0, len(texts), step)]
    ds = ray.data.from_arrow(blocks)
    out = ds.map_batches(_EncodeBatch, fn_constructor_kwargs={"spec": spec.to_json(), "batch_size": batch_size},
                         batch_size=rows_per_batch, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=1)
    vecs: np.ndarray | None = None
    for batch in out.iter_batches(batch_size=8192, batch_format="numpy"):
        part = np.asarray(batch["vec"], dtype=np.float32)
        if vecs is None:
            vecs = np.zeros((len(texts), part.shape[1]), np.float32)
        vecs[batch["row"]] = part
    if vecs is None:
        raise RuntimeError("Ray Data returned no embeddings")
    return vecs
