"""Evaluation arithmetic: queries a strategy abstains on count as zeros."""
from __future__ import annotations

import pytest

from core.records import Candidate
from ltrr.evaluate import _score
from ranking.fusion import rrf


def test_abstained_queries_count_as_zero():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    assert _score(qrels, {"a": {"x": 1.0}, "b": {}})["ndcg@10"] == pytest.approx(0.5)
    assert _score(qrels, {})["ndcg@10"] == 0.0
    assert _score(qrels, {"a": {"x": 1.0}, "b": {"z": 1.0, "y": 0.5}})["mrr@10"] == pytest.approx(0.75)


def test_rrf_rewards_agreement():
    a = [Candidate.of("lexical", "x", 1, 9), Candidate.of("lexical", "y", 2, 8)]
    b = [Candidate.of("dense", "y", 1, 0.9), Candidate.of("dense", "z", 2, 0.8)]
    fused = rrf([a, b], k=3)
    assert [c.item_id for c in fused] == ["y", "x", "z"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert all(c.strategy == "rrf" for c in fused)
