"""`dense-static`: dense retrieval with a static embedding model distilled from MiniLM.

The same faiss retriever as `dense` (`retrievers/dense.py`); only the encoder differs: a
model2vec model distilled offline from the shipped all-MiniLM-L6-v2
(`retrievers/encoders.py`). A text's vector is the SIF-weighted mean of its tokens'
vectors, so encoding costs a table look-up per token: a million music-demo tracks encode
in under a minute on 2 cores (MiniLM: over an hour), and a query in microseconds. Quality
is lower than MiniLM's (README, "Scale"), which is the point of offering both: a second
dense strategy with a very different cost gives the bandit a real choice.

The build copies the distilled model (about 30 MB) into the index directory (`model/`),
so serving never distills and items and queries are encoded by the very same model.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from retrievers.dense import DenseConfig, DenseRetriever
from retrievers.encoders import STATIC, EncoderSpec, distilled_static_model

MODEL_DIR = "model"


class DenseStaticRetriever(DenseRetriever):
    """Nearest neighbours under the distilled static encoder."""

    name = "dense-static"
    model_name = "all-MiniLM-L6-v2 distilled to static embeddings (model2vec)"
    uses_encoder = False  # encodes in-process (about 40,000 texts/s): no Ray Data, no model on other nodes

    @classmethod
    def encoder_spec(cls, out_dir: Path, config: DenseConfig) -> EncoderSpec:
        target = out_dir / MODEL_DIR
        if not (target / "model.safetensors").is_file():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(distilled_static_model(), target)
        return EncoderSpec(STATIC, str(target.resolve()), config.max_seq_length)

    @classmethod
    def write_index(cls, out_dir, vecs, ids, fields, spec, config):
        # stored relative to the index directory, so a moved or copied index still finds its model
        return super().write_index(out_dir, vecs, ids, fields, EncoderSpec(STATIC, MODEL_DIR, spec.max_seq_length),
                                   config)
