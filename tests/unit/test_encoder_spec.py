"""How an index names its encoder: the spec round-trips through JSON with its precision, an
index written before precision existed reads as fp32 (the arithmetic it was encoded in), and
an unknown precision is refused by the config and by the resolver, before any model loads."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from retrievers.dense import DenseConfig, DenseRetriever
from retrievers.encoders import MINILM, EncoderSpec, resolve_precision


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_spec_round_trips(precision):
    spec = EncoderSpec(MINILM, None, 128, precision)
    assert EncoderSpec.from_json(spec.to_json()) == spec


def test_old_index_spec_is_fp32():
    assert EncoderSpec.from_json({"kind": MINILM, "model_dir": None, "max_seq_length": 256}).precision == "fp32"


def test_config_default_is_auto_and_reaches_the_spec(tmp_path):
    assert DenseConfig().precision == "auto"
    assert DenseRetriever.encoder_spec(tmp_path, DenseConfig(precision="bf16")).precision == "bf16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValidationError):
        DenseConfig(precision="fp16")
    with pytest.raises(ValueError, match="unknown encoder precision 'fp16'"):
        resolve_precision("fp16")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


@pytest.mark.parametrize("avx512_bf16,amx,expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                      (False, False, "fp32")])
def test_auto_is_bf16_only_with_native_bf16(monkeypatch, tmp_path, avx512_bf16, amx, expected):
    """auto means bf16 only on avx512_bf16 or AMX (plain AVX-512 would emulate it, slower than
    fp32), and an index records the resolved arithmetic, never `auto`."""
    import torch

    from retrievers import encoders

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    encoders.native_bf16.cache_clear()
    try:
        assert resolve_precision("auto") == expected
        assert DenseRetriever.encoder_spec(tmp_path, DenseConfig()).precision == expected
    finally:
        encoders.native_bf16.cache_clear()
