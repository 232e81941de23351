"""Real-data fixtures shared by the integration tier: each expensive index is built once per
session. Cranfield's lexical and MiniLM dense index (50 s of encoding on 2 cores) serves both
the published-number regression (test_beir_regression) and the ranker on real data
(test_ranking_real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.model import Dataset
from ingest.beir import load_beir
from retrievers.index import IndexHandle
from tests.helpers.service import built_index


def _beir(data_root: Path, name: str) -> Path:
    path = data_root / name
    if not path.is_dir():
        pytest.fail(f"LTRR_DATA={data_root} has no {name} directory")
    return path


@pytest.fixture(scope="session")
def cranfield(data_root: Path) -> Dataset:
    return load_beir(_beir(data_root, "cranfield"))


@pytest.fixture(scope="session")
def cranfield_index(data_root: Path, tmp_path_factory) -> IndexHandle:
    out = tmp_path_factory.mktemp("cranfield") / "index"
    return IndexHandle.open(built_index(f"beir:{_beir(data_root, 'cranfield')}", out, "lexical,dense"))
