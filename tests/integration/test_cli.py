"""The `ltrr` command as a user runs it: real subprocesses, a real JVM and faiss index.

Bad input must end in one `error:` line and exit status 2, never a traceback.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrievers.dense import DenseRetriever
from retrievers.encoders import MINILM, EncoderSpec, get_encoder
from tests.helpers.beir_fixture import DOCS, write_beir


def ltrr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ltrr.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for n in needles:
        assert n in last, last


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    data = write_beir(root / "data")
    index = root / "index"
    proc = ltrr("index", "--dataset", str(data), "--out", str(index), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["counts"]["items"] == len(DOCS)
    assert set(summary["strategies"]) == {"lexical", "dense", "memory", "popularity", "structured", "explore"}
    return data, index


def test_index_writes_manifest_with_counts_and_versions(built):
    _, index = built
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["counts"] == {"items": 8, "queries": {"test": 4}}
    assert manifest["versions"]["pyserini"] == "1.6.0"
    assert len(manifest["dataset"]["fingerprint"]) == 16


@pytest.mark.parametrize("strategy", ["lexical", "dense", "rrf"])
def test_eval_json_last_line(built, strategy):
    data, index = built
    proc = ltrr("eval", "--index", str(index), "--dataset", str(data), "--split", "test", "--strategy", strategy,
                "--k", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"ndcg@10", "recall@100", "mrr@10", "queries", "latency_ms"} <= set(res)
    assert set(res["latency_ms"]) == {"p50", "p99"}
    assert res["queries"] == 4  # the long query (beir_fixture.LONG, over 20,000 characters) is answered too
    # every query has its best document among the eight: a working retriever puts it near the top
    assert res["mrr@10"] >= 0.5 and res["recall@100"] == 1.0


def test_rebuilding_same_data_is_a_no_op(built):
    data, index = built
    before = json.loads((index / "manifest.json").read_text())["strategies"]
    proc = ltrr("index", "--dataset", str(data), "--out", str(index), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((index / "manifest.json").read_text())["strategies"] == before  # nothing rebuilt


def test_index_refuses_other_data(built, tmp_path):
    _, index = built
    other = write_beir(tmp_path / "other", {**DOCS, "d9": ("Extra", "Another document")})
    assert_clean_error(ltrr("index", "--dataset", str(other), "--out", str(index)), "built from dataset")


def test_eval_refuses_other_data(built, tmp_path):
    _, index = built
    other = write_beir(tmp_path / "other", {**DOCS, "d9": ("Extra", "Another document")})
    assert_clean_error(ltrr("eval", "--index", str(index), "--dataset", str(other), "--strategy", "lexical"),
                       "built from dataset")


def test_index_refuses_non_index_directory(tmp_path):
    data = write_beir(tmp_path / "data")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert_clean_error(ltrr("index", "--dataset", str(data), "--out", str(tmp_path / "taken")), "not an ltrr index")


def test_missing_dataset(tmp_path):
    assert_clean_error(ltrr("index", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "i")),
                       "does not exist")


def test_malformed_dataset(tmp_path):
    data = write_beir(tmp_path / "data")
    with (data / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
    assert_clean_error(ltrr("index", "--dataset", str(data), "--out", str(tmp_path / "i")), "corpus.jsonl:9")


def test_dataset_without_qrels(tmp_path):
    data = write_beir(tmp_path / "data")
    (data / "qrels" / "test.tsv").unlink()
    assert_clean_error(ltrr("index", "--dataset", str(data), "--out", str(tmp_path / "i")), "qrels")


def test_unknown_builtin(tmp_path):
    assert_clean_error(ltrr("index", "--dataset", "builtin:nope", "--out", str(tmp_path / "i")), "unknown builtin")


def test_eval_bad_k_and_split_and_strategy(built):
    data, index = built
    assert_clean_error(ltrr("eval", "--index", str(index), "--dataset", str(data), "--k", "0"), "--k")
    assert_clean_error(ltrr("eval", "--index", str(index), "--dataset", str(data), "--split", "dev"), "no split")
    assert_clean_error(ltrr("eval", "--index", str(index), "--dataset", str(data), "--strategy", "magic"),
                       "unknown strategy")


def test_eval_missing_index(tmp_path):
    data = write_beir(tmp_path / "data")
    assert_clean_error(ltrr("eval", "--index", str(tmp_path / "none"), "--dataset", str(data)), "not an ltrr index")


def test_dense_max_tokens_is_recorded_and_queries_use_it(tmp_path):
    """`--dense-max-tokens` sets how much of each item the dense strategy encodes; the index
    records it and encodes queries with the same truncation. Out-of-range values are refused."""
    data = write_beir(tmp_path / "data")
    proc = ltrr("index", "--dataset", str(data), "--out", str(tmp_path / "i"), "--strategies", "dense",
                "--dense-max-tokens", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "i" / "dense" / "dense.json").read_text())
    assert meta["config"]["max_seq_length"] == 16 and meta["encoder"]["max_seq_length"] == 16
    short = DenseRetriever.load(tmp_path / "i" / "dense").encoder
    full = get_encoder(EncoderSpec(MINILM, None, 256, short.precision))
    assert short.graph is full.graph  # one MiniLM graph per process and precision, each encoder its own truncation
    text = " ".join(["quiet"] * 20 + ["storm"] * 40)
    first = full.encode([text])
    assert not np.allclose(short.encode([text]), first, atol=1e-3)
    assert np.allclose(full.encode([text]), first, atol=1e-6)
    for bad in ("0", "4096"):
        assert_clean_error(ltrr("index", "--dataset", str(data), "--out", str(tmp_path / "j"),
                                "--dense-max-tokens", bad), "--dense-max-tokens")


def test_bench_refuses_bad_settings_in_one_line(tmp_path):
    """Checked before any work, by the config's own bounds: a budget share of 0, a negative call price."""
    assert_clean_error(ltrr("bench", "--budget-shares", "0.1,0", "--state", str(tmp_path / "s"),
                            "--out", str(tmp_path / "o")), "budget_shares.1", "greater than 0")
    assert_clean_error(ltrr("bench", "--call-overhead-ms", "-1", "--state", str(tmp_path / "s"),
                            "--out", str(tmp_path / "o")), "call_overhead_ms", "greater than or equal")
