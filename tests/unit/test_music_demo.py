"""The embedded `builtin:music-demo` generator: determinism, shape, and the query intents' promises."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from core.errors import DatasetError
from ingest import music_demo

INTENTS = {"title", "artist", "misspelled", "genre_mood", "descriptive"}


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def demo():
    return music_demo.generate()


@pytest.fixture(scope="module")
def vocab(demo) -> set[str]:
    return {w for it in demo.items for v in it.fields.values() for w in re.findall(r"[a-z0-9]+", v.lower())}


def queries_of(demo, intent: str):
    for split in ("train", "test"):
        qs = demo.split(split)
        for qid, text in qs.queries.items():
            if qs.intents[qid] == intent:
                yield text, qs.qrels[qid]


def test_same_seed_same_data_and_other_seed_differs(demo):
    again = music_demo.generate()
    assert again.fingerprint() == demo.fingerprint()
    assert again.split("train") == demo.split("train") and again.split("test") == demo.split("test")
    small = {"n_tracks": 400, "n_artists": 40, "n_train": 100, "n_test": 50}
    assert music_demo.generate(seed=1, **small).fingerprint() != music_demo.generate(seed=2, **small).fingerprint()
    assert music_demo.generate(seed=1, **small).split("test").queries != \
        music_demo.generate(seed=2, **small).split("test").queries


def test_sizes_schema_and_fields(demo):
    assert (demo.name, demo.spec) == ("music-demo", "builtin:music-demo")
    assert len(demo.items) == 3000 and len({it.id for it in demo.items}) == 3000
    assert len({it.fields["artist"] for it in demo.items}) == 250
    assert {len(demo.split("train").queries), len(demo.split("test").queries)} == {1200, 400}
    assert demo.schema.text_fields == {"title": 3.0, "artist": 2.0, "album": 1.0, "genre": 1.0, "mood": 1.0,
                                       "description": 1.0}
    assert demo.schema.category_fields == ["genre", "mood"]
    for it in demo.items:
        assert set(it.fields) == {"title", "artist", "album", "genre", "mood", "description"}
        assert all(isinstance(v, str) and v for v in it.fields.values())
        assert 1960 <= it.year <= 2025 and it.popularity > 0
    genres = Counter(it.fields["genre"] for it in demo.items)
    moods = Counter(it.fields["mood"] for it in demo.items)
    assert len(genres) == 10 and len(moods) == 8 and min(genres.values()) > 50
    titles = Counter(it.fields["title"] for it in demo.items)
    assert 0.9 * 3000 < len(titles) < 3000  # mostly unique, with some same-title tracks


def test_every_intent_in_both_splits_in_equal_shares(demo):
    for split, n in (("train", 1200), ("test", 400)):
        counts = Counter(demo.split(split).intents.values())
        assert set(counts) == INTENTS
        assert all(c == n // 5 for c in counts.values()), counts


def test_qrels_point_at_items_with_valid_grades(demo):
    ids = {it.id for it in demo.items}
    for split in ("train", "test"):
        qs = demo.split(split)
        assert set(qs.qrels) == set(qs.queries) == set(qs.intents)
        for rel in qs.qrels.values():
            assert rel and set(rel) <= ids and set(rel.values()) <= {1, 2, 3}
        assert len(qs.judged()) == len(qs.queries)


def test_splits_are_disjoint_in_query_text(demo):
    train = [norm(t) for t in demo.split("train").queries.values()]
    test = [norm(t) for t in demo.split("test").queries.values()]
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)


def test_popularity_is_heavy_tailed_and_new_tracks_are_unpopular(demo):
    pop = np.sort([it.popularity for it in demo.items])[::-1]
    assert pop[:300].sum() / pop.sum() > 0.4
    assert pop[0] > 50 * np.median(pop)
    new = [it.popularity for it in demo.items if it.year >= 2024]
    assert len(new) >= 20
    assert np.median(new) < np.percentile(pop, 25)


def test_artist_popularity_is_correlated(demo):
    by_artist: dict[str, list[float]] = {}
    for it in demo.items:
        by_artist.setdefault(it.fields["artist"], []).append(np.log(it.popularity))
    means = [np.mean(v) for v in by_artist.values()]
    within = np.mean([np.var(v) for v in by_artist.values()])
    assert np.var(means) > 0.5 * within  # artists differ, not just tracks


def test_title_and_artist_queries(demo):
    by_id = {it.id: it for it in demo.items}
    for text, rel in queries_of(demo, "title"):
        best = [i for i, g in rel.items() if g == 3]
        assert len(best) == 1 and norm(by_id[best[0]].fields["title"]) == norm(text)
        assert all(norm(by_id[i].fields["title"]) == norm(text) for i in rel)
    for text, rel in queries_of(demo, "artist"):
        artists = {by_id[i].fields["artist"] for i in rel}
        assert len(artists) == 1
        (name,) = artists
        assert norm(name) in norm(text)
        assert len(rel) == sum(it.fields["artist"] == name for it in demo.items)
        top3 = sorted(rel, key=lambda i: -by_id[i].popularity)[:3]
        assert all(rel[i] == 3 for i in top3) and sum(g == 3 for g in rel.values()) == 3


def test_misspelled_queries_never_use_a_correct_token(demo, vocab):
    by_id = {it.id: it for it in demo.items}
    n = 0
    for text, rel in queries_of(demo, "misspelled"):
        best = by_id[next(i for i, g in rel.items() if g == 3)]
        targets = [norm(best.fields[f]) for f in ("title", "artist")
                   if len(norm(best.fields[f]).split()) == len(text.split())]
        target = min(targets, key=lambda t: sum(a != b for a, b in zip(t.split(), text.split())))
        changed = [q for q, c in zip(text.split(), target.split()) if q != c]
        assert 1 <= len(changed) <= 2
        assert all(tok not in vocab for tok in changed), (text, target)
        n += 1
    assert n == 320


def test_genre_mood_relevance_is_bounded_and_graded_by_popularity(demo):
    by_id = {it.id: it for it in demo.items}
    for _text, rel in queries_of(demo, "genre_mood"):
        assert 5 <= len(rel) <= music_demo.MAX_RELEVANT
        assert sum(g == 2 for g in rel.values()) == min(20, len(rel))
        low2 = min(by_id[i].popularity for i, g in rel.items() if g == 2)
        assert all(by_id[i].popularity <= low2 for i, g in rel.items() if g == 1)
    texts = {t for t, _ in queries_of(demo, "genre_mood")}
    assert "love songs" in texts or "romantic songs" in texts


def test_descriptive_queries_share_no_content_word_with_the_catalogue(demo, vocab):
    stems = {music_demo.stem(w) for w in vocab}
    by_id = {it.id: it for it in demo.items}
    for text, rel in queries_of(demo, "descriptive"):
        content = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in music_demo.STOPWORDS]
        assert content and not [w for w in content if w in vocab or music_demo.stem(w) in stems], text
        assert len(rel) <= music_demo.MAX_RELEVANT
        top = [by_id[i] for i, g in rel.items() if g == 3]
        assert top and len({it.fields["mood"] for it in top}) == 1  # one mood asked for


def test_small_catalogue_still_has_every_intent():
    small = music_demo.generate(seed=3, n_tracks=100, n_artists=10, n_train=50, n_test=20)
    assert len(small.items) == 100 and small.spec.startswith("builtin:music-demo?seed=3")
    for split, n in (("train", 50), ("test", 20)):
        assert Counter(small.split(split).intents.values()) == {intent: n // 5 for intent in INTENTS}


def test_invalid_arguments_raise_dataset_error():
    with pytest.raises(DatasetError, match="n_tracks"):
        music_demo.generate(n_tracks=100, n_artists=50)
    with pytest.raises(DatasetError, match="n_artists"):
        music_demo.generate(n_artists=1)
    with pytest.raises(DatasetError, match="seed"):
        music_demo.generate(seed=-3)
    with pytest.raises(DatasetError, match="n_train"):
        music_demo.generate(n_train=2)


def test_catalogues_past_the_two_word_name_space_still_generate():
    """More artists than First x Last names draw 'First Middle Last'; ids and artists stay unique."""
    big = music_demo.generate(n_tracks=7500, n_artists=2400, n_train=20, n_test=10)
    artists = {it.fields["artist"] for it in big.items}
    assert len(artists) == 2400 and any(len(a.split()) == 3 for a in artists)
    assert len({it.id for it in big.items}) == 7500
    with pytest.raises(DatasetError, match="n_artists"):
        music_demo.generate(n_tracks=10**6, n_artists=music_demo.MAX_ARTISTS + 1)
