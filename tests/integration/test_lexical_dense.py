"""Lexical (BM25 via a real JVM) and dense (real MiniLM + faiss) on the tiny catalogue."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import BadRequest, IndexError_
from retrievers.base import MAX_QUERY_CHARS, Query
from retrievers.dense import DenseConfig, DenseRetriever
from retrievers.lexical import LexicalConfig, LexicalRetriever
from tests.helpers.catalogue import ROWS, tiny_dataset

GENRE = {r[0]: r[4] for r in ROWS}
ARTIST = {r[0]: r[2] for r in ROWS}


@pytest.fixture(scope="module")
def lexical(tmp_path_factory) -> LexicalRetriever:
    out = tmp_path_factory.mktemp("lex") / "lexical"
    LexicalRetriever.build(tiny_dataset(), out)
    return LexicalRetriever.load(out)


@pytest.fixture(scope="module")
def lexical_prior(tmp_path_factory) -> LexicalRetriever:
    out = tmp_path_factory.mktemp("lexp") / "lexical"
    LexicalRetriever.build(tiny_dataset(), out, LexicalConfig(prior_weight=1.0))
    return LexicalRetriever.load(out)


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> DenseRetriever:
    out = tmp_path_factory.mktemp("dense") / "dense"
    DenseRetriever.build(tiny_dataset(), out)
    return DenseRetriever.load(out)


def test_lexical_exact_title_first(lexical):
    got = lexical.retrieve("love story", 5)
    assert got[0].item_id == "t01"
    assert [c.rank for c in got] == list(range(1, len(got) + 1))
    assert all(c.strategy == "lexical" for c in got)


def test_lexical_title_boost_beats_album(lexical):
    # "Come Away with Me" is both a title (t08) and the album of t07 and t08: the title field's boost wins
    assert lexical.retrieve("come away with me", 3)[0].item_id == "t08"


def test_lexical_artist_query(lexical):
    got = lexical.retrieve("taylor swift", 5)
    assert {c.item_id for c in got} == {"t01", "t02", "t03", "t04", "t30"}


def test_popularity_prior_orders_equal_matches(lexical_prior):
    got = [c.item_id for c in lexical_prior.retrieve("taylor swift", 5)]
    assert got[:2] == ["t02", "t01"]  # popularity 98, then 95


def test_lexical_returns_nothing_for_unknown_words(lexical):
    assert lexical.retrieve("zzzqqq", 10) == []


def test_dense_finds_semantic_neighbours(dense):
    got = dense.retrieve("calm jazz for a quiet evening", 3)
    assert sum(GENRE[c.item_id] == "jazz" for c in got) >= 2
    assert all(c.strategy == "dense" for c in got)
    assert got[0].score >= got[-1].score


def test_dense_tolerates_misspelled_artist(dense):
    assert ARTIST[dense.retrieve("metalica", 1)[0].item_id] == "Metallica"


def test_hnsw_agrees_with_exact(tmp_path, dense):
    DenseRetriever.build(tiny_dataset(), tmp_path / "hnsw", DenseConfig(index="hnsw"))
    hnsw = DenseRetriever.load(tmp_path / "hnsw")
    assert hnsw.meta["index"] == "hnsw"
    for q in ("love story", "electronic dance", "metal"):
        assert [c.item_id for c in hnsw.retrieve(q, 3)] == [c.item_id for c in dense.retrieve(q, 3)]


def test_precision_is_recorded_and_bf16_agrees_with_fp32(tmp_path, dense):
    """`auto` encodes in bf16 exactly where the CPU multiplies bf16 natively; bf16 vectors (items
    and queries) stay within a cosine of 0.9999 of fp32's, and an index from before `precision`
    existed is read as fp32. Fails if the bf16 graph's vectors were not renormalised in fp32 or if
    a bf16 product lost more than rounding."""
    from retrievers.encoders import EncoderSpec, native_bf16

    assert dense.meta["encoder"]["precision"] == ("bf16" if native_bf16() else "fp32")  # resolved, never auto
    assert dense.encoder.precision == dense.meta["encoder"]["precision"]
    for precision in ("fp32", "bf16"):
        DenseRetriever.build(tiny_dataset(), tmp_path / precision, DenseConfig(precision=precision))
    fp32, bf16 = (DenseRetriever.load(tmp_path / p) for p in ("fp32", "bf16"))
    assert (fp32.meta["encoder"]["precision"], bf16.meta["encoder"]["precision"]) == ("fp32", "bf16")
    items = [np.load(tmp_path / p / "vectors.npy") for p in ("fp32", "bf16")]
    cos = np.sum(items[0] * items[1], axis=1)
    assert cos.min() >= 0.9999 and np.allclose(np.linalg.norm(items[1], axis=1), 1, atol=1e-5)
    queries = ["calm jazz for a quiet evening", "metalica", "x"]
    assert np.sum(fp32.encoder.encode(queries) * bf16.encoder.encode(queries), axis=1).min() >= 0.9999
    assert not np.array_equal(items[0], items[1]), "bf16 should not be fp32 under another name"
    assert EncoderSpec.from_json({"kind": "minilm", "max_seq_length": 256}).precision == "fp32"


def test_traced_encoder_gives_the_sentence_transformers_vectors():
    """The frozen graph (retrievers.encoders.traced_minilm) is sentence-transformers' pipeline:
    in fp32 every vector equals `SentenceTransformer.encode`'s to a cosine of 0.99999, one text at a
    time and in padded batches of very different lengths, with truncation at max_seq_length.
    Fails if padding leaked into the mean, the mask were ignored, or truncation differed."""
    from retrievers.encoders import MiniLMEncoder, load_minilm

    texts = ["x", "calm jazz for a quiet evening", "metal " * 300, "a love song " * 20, ""]
    model = load_minilm()
    for max_len in (16, 256):
        model.max_seq_length = max_len
        want = model.encode(texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
        enc = MiniLMEncoder(max_len, "fp32")
        for got in (enc.encode(texts, batch_size=8), np.concatenate([enc.encode([t], 1) for t in texts])):
            assert got.shape == (len(texts), 384) and got.dtype == np.float32
            assert np.sum(got * want, axis=1).min() >= 0.99999

@pytest.mark.parametrize("name", ["lexical", "dense"])
def test_a_batch_answers_as_single_calls_and_keeps_errors_per_query(request, name):
    """retrieve_many (what the Serve deployment batches concurrent calls into) equals one
    retrieve per query; a bad query gets its own BadRequest, its batch mates their answers."""
    r = request.getfixturevalue(name)
    queries = [Query(t) for t in ("love story", "electronic dance", "   ", "metal", "calm jazz")]
    ks = [3, 5, 4, 1, 2]
    out = r.retrieve_many(queries, ks)
    assert isinstance(out[2], BadRequest) and "empty" in str(out[2])
    for q, k, got in zip(queries, ks, out, strict=True):
        if q.text.strip():
            assert [c.item_id for c in got] == [c.item_id for c in r.retrieve(q, k)] and len(got) <= k
    assert DenseRetriever.batched and not LexicalRetriever.batched


@pytest.mark.parametrize("name", ["lexical", "dense"])
@pytest.mark.parametrize("text,k,msg", [("", 5, "empty"), ("   ", 5, "empty"),
                                        ("x" * (MAX_QUERY_CHARS + 1), 5, "limit"),
                                        ("love", 0, "k must be"), ("love", 1001, "k must be")])
def test_bad_input(request, name, text, k, msg):
    r = request.getfixturevalue(name)
    with pytest.raises(BadRequest, match=msg):
        r.retrieve(Query(text=text), k)


@pytest.mark.parametrize("cls", [LexicalRetriever, DenseRetriever])
def test_load_missing(cls, tmp_path: Path):
    with pytest.raises(IndexError_, match="ltrr index"):
        cls.load(tmp_path / "absent")
