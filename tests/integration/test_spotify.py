"""The Spotify loader on the real file (LTRR_DATA), and its error handling on bad input."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from core.errors import DatasetError
from ingest.spotify import CSV_NAME, load_spotify, split_of


@pytest.fixture(scope="module")
def spotify_dir(data_root: Path) -> Path:
    folder = data_root / "spotify_songs"
    if not (folder / CSV_NAME).is_file():
        pytest.fail(f"LTRR_DATA is set but {folder / CSV_NAME} is missing: fix LTRR_DATA or restore the data")
    return folder


@pytest.fixture(scope="module")
def spotify(spotify_dir: Path):
    return load_spotify(spotify_dir)


@pytest.fixture(scope="module")
def raw_rows(spotify_dir: Path) -> list[dict[str, str]]:
    with (spotify_dir / CSV_NAME).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_catalogue_has_one_item_per_track(spotify, raw_rows):
    assert spotify.name == "spotify"
    assert len(raw_rows) == 32833
    assert len(spotify.items) == 28356
    assert len({it.id for it in spotify.items}) == 28356
    assert all(0 <= it.popularity <= 100 for it in spotify.items)
    assert sum(it.year is not None for it in spotify.items) > 28000
    assert all(1900 <= it.year <= 2025 for it in spotify.items if it.year is not None)


def test_track_in_several_playlists_is_one_item_relevant_to_each(spotify, raw_rows):
    per_track = Counter(r["track_id"] for r in raw_rows)
    tid, n_rows = per_track.most_common(1)[0]
    assert n_rows >= 3
    assert sum(it.id == tid for it in spotify.items) == 1
    names = {r["playlist_name"] for r in raw_rows if r["track_id"] == tid}
    qs = spotify.split("all")
    holding = {qs.queries[q] for q, rel in qs.qrels.items() if tid in rel}
    assert holding == names
    item = next(it for it in spotify.items if it.id == tid)
    genres = Counter(r["playlist_genre"] for r in raw_rows if r["track_id"] == tid)
    top = max(genres.values())
    assert item.fields["genre"] == min(g for g, c in genres.items() if c == top)


def test_fields_come_from_the_csv(spotify, raw_rows):
    row = raw_rows[0]
    item = next(it for it in spotify.items if it.id == row["track_id"])
    assert item.fields["title"] == row["track_name"]
    assert item.fields["artist"] == row["track_artist"]
    assert item.fields["album"] == row["track_album_name"]
    assert item.year == int(row["track_album_release_date"][:4])
    assert item.popularity == float(row["track_popularity"])
    assert set(item.fields) == {"title", "artist", "album", "genre", "subgenre"}
    untitled = [it for it in spotify.items if not it.fields["title"]]
    assert 1 <= len(untitled) <= 5  # the file's "NA" titles load as empty strings


def test_queries_are_playlist_names_split_disjointly(spotify, raw_rows):
    every, train, test = (spotify.split(s) for s in ("all", "train", "test"))
    assert len(every.queries) == 449
    assert set(every.queries.values()) == {r["playlist_name"] for r in raw_rows}
    assert not set(train.queries) & set(test.queries)
    assert set(train.queries) | set(test.queries) == set(every.queries)
    assert (len(train.queries), len(test.queries)) == (310, 139)  # pinned: md5 split of the real names
    ids = {it.id for it in spotify.items}
    assert all(rel and set(rel) <= ids and set(rel.values()) == {1} for rel in every.qrels.values())
    assert sum(len(rel) for rel in every.qrels.values()) >= 28356
    assert all(split_of(q) == "train" for q in train.queries.values())


def test_loading_is_deterministic(spotify, spotify_dir):
    again = load_spotify(spotify_dir)
    assert again.fingerprint() == spotify.fingerprint()
    assert again.split("test").queries == spotify.split("test").queries


def test_split_of_is_stable():
    # pinned values: a change here would silently reshuffle everyone's train/test split
    names = ("Chill Vibes", "Pop Remix", "Dinner Jazz", "90s Dance Hits")
    assert [split_of(n) for n in names] == ["train", "train", "train", "test"]


def test_bad_directory_raises_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_spotify(tmp_path / "nope")
    with pytest.raises(DatasetError, match=CSV_NAME):
        load_spotify(tmp_path)
    (tmp_path / CSV_NAME).write_text("track_id,track_name\nabc,Song\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="lacks required column"):
        load_spotify(tmp_path)


def test_small_csv_with_missing_values_loads(tmp_path):
    header = ("track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
              "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre")
    rows = ["t1,NA,NA,,a1,NA,NA,Mix A,p1,rap,trap",
            "t1,NA,NA,,a1,NA,NA,Mix B,p2,pop,dance pop",
            "t2,Song,Band,55,a2,Album,1999-05-01,Mix B,p2,pop,dance pop"]
    (tmp_path / CSV_NAME).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    ds = load_spotify(tmp_path)
    items = {it.id: it for it in ds.items}
    assert set(items) == {"t1", "t2"}
    assert items["t1"].fields["title"] == "" and items["t1"].year is None and items["t1"].popularity == 0.0
    assert items["t1"].fields["genre"] == "pop"  # a tie between pop and rap goes to the alphabetically first
    assert items["t2"].year == 1999 and items["t2"].popularity == 55.0
    assert sorted(ds.split("all").queries.values()) == ["Mix A", "Mix B"]
    bad = rows[2].replace(",55,", ",lots,")
    (tmp_path / CSV_NAME).write_text(f"{header}\n{bad}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2: track_popularity"):
        load_spotify(tmp_path)


def test_related_entities_on_spotify(spotify_dir: Path, spotify, tmp_path: Path):
    """Artists, albums (fields) and playlists (explicit) survive `ltrr index`, come back as the
    related entities of an artist-plus-title query's results, and the artist gets a card."""
    from engine.entities import EntityIndex
    from retrievers.index import IndexHandle
    from tests.helpers.service import built_index

    index = IndexHandle.open(built_index(str(spotify_dir), tmp_path / "index", "structured"))
    entities = EntityIndex(index.entities())
    # 449 playlist names, 418 once "Permanent Wave", "permanent wave" and the like are one playlist
    assert len([e for e in entities.entities.values() if e.type == "playlist"]) == 418
    assert {e.type for e in entities.entities.values()} == {"artist", "album", "playlist"}
    item = max((it for it in spotify.items if it.fields["title"] and it.fields["artist"]),
               key=lambda it: (it.popularity, it.id))
    query = f"{item.fields['artist']} {item.fields['title']}"
    top = [c.item_id for c in index.load("structured").retrieve(query, 10)]
    assert top[0] == item.id or item.id in top[:3]
    related = entities.related(top, limit=10)
    kinds = {h.entity.type for h in related}
    assert {"artist", "album", "playlist"} <= kinds
    assert item.fields["artist"] in [h.entity.name for h in entities.cards(query) if h.entity.type == "artist"]
