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
