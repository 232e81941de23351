"""The real Spotify catalogue (TidyTuesday 2020-01-21 `spotify_songs.csv`) as a Dataset.

Why: it is the project's real-data benchmark for music search. Each CSV row is one
(playlist, track) entry, so the same track appears once per playlist it is in. We build:

- one Item per unique `track_id` (28,356 in the published file), with title, artist,
  album, genre and subgenre (the most common over the track's rows, ties alphabetically),
  year (from the album release date) and popularity (0-100);
- one query per distinct `playlist_name` (449): real, human-written names such as
  "Chill Vibes", whose relevant items (grade 1) are the tracks of that playlist.

Entities (core.entities): artists and albums from the fields, and one playlist entity per
playlist name holding its tracks (shown beside results; the evaluation never reads them).

Queries are split by a hash of the playlist name (md5, so the split is the same on every
run and platform): `train` (~70%), `test` (~30%), and `all`.
"""
from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from pathlib import Path

from core.entities import Entity, entity_id
from core.errors import DatasetError
from core.model import Dataset, Item, QuerySet, Schema

CSV_NAME = "spotify_songs.csv"
MISSING = frozenset({"NA", "NaN", "nan"})
TRAIN_PERCENT = 70
REQUIRED_COLUMNS = ("track_id", "track_name", "track_artist", "track_popularity", "track_album_name",
                    "track_album_release_date", "playlist_name", "playlist_genre", "playlist_subgenre")

SCHEMA = Schema(
    text_fields={"title": 2.0, "artist": 1.5, "album": 1.0, "genre": 1.0, "subgenre": 1.0},
    category_fields=["genre", "subgenre"], entity_fields=["title", "artist", "album"],
    dense_fields=["title", "artist", "album", "genre", "subgenre"],
    entity_types={"artist": ["artist"], "album": ["album", "artist"]})


def split_of(playlist_name: str) -> str:
    """'train' or 'test', from the md5 of the name: stable across runs, Python versions and platforms."""
    bucket = int(hashlib.md5(playlist_name.encode("utf-8")).hexdigest(), 16) % 100
    return "train" if bucket < TRAIN_PERCENT else "test"


def query_id(playlist_name: str) -> str:
    """A stable id for a playlist-name query (does not depend on row order)."""
    return "pl-" + hashlib.md5(playlist_name.encode("utf-8")).hexdigest()[:12]


def _csv_path(path: Path) -> Path:
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return path
    if not path.exists():
        raise DatasetError(f"Spotify data directory {str(path)!r} does not exist: point it at the folder "
                           f"holding {CSV_NAME} (e.g. ../shared/data/spotify_songs)")
    if not path.is_dir():
        raise DatasetError(f"{str(path)!r} is not a directory: point it at the folder holding {CSV_NAME}")
    csv_path = path / CSV_NAME
    if not csv_path.is_file():
        raise DatasetError(f"{str(path)!r} has no {CSV_NAME}: the Spotify loader reads that file from this folder")
    return csv_path


def _most_common(values: list[str]) -> str:
    """The most frequent non-empty value; ties go to the alphabetically first. '' if none."""
    counts = Counter(v for v in values if v)
    if not counts:
        return ""
    return min(counts, key=lambda v: (-counts[v], v))


def _year(date: str) -> int | None:
    head = date.strip()[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None


def _popularity(raw: str, line: int) -> float:
    if not raw.strip():
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise DatasetError(f"{CSV_NAME} line {line}: track_popularity {raw!r} is not a number") from None
    if math.isnan(value) or value < 0:
        raise DatasetError(f"{CSV_NAME} line {line}: track_popularity {raw!r} must be a non-negative number")
    return value


def _clean(value: str | None) -> str:
    """The file writes missing values as R's 'NA' (pandas reads them as NaN): they become ''."""
    value = (value or "").strip()
    return "" if value in MISSING else value


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DatasetError(f"{csv_path} lacks required column(s) {', '.join(missing)}; expected the "
                                   f"TidyTuesday spotify_songs.csv header with {', '.join(REQUIRED_COLUMNS)}")
            return [{c: _clean(row.get(c)) for c in REQUIRED_COLUMNS} for row in reader]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{csv_path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DatasetError(f"{csv_path} is not a readable CSV file: {exc}") from None


def load_spotify(path: Path) -> Dataset:
    """Load the Spotify catalogue and playlist-name queries from a directory holding spotify_songs.csv."""
    csv_path = _csv_path(Path(path))
    rows = _read_rows(csv_path)
    if not rows:
        raise DatasetError(f"{csv_path} has a header but no rows")

    tracks: dict[str, list[tuple[int, dict[str, str]]]] = {}  # track_id -> its rows, in file order
    playlists: dict[str, set[str]] = {}  # playlist name -> track ids
    for line, row in enumerate(rows, start=2):
        tid = row["track_id"]
        if not tid:
            raise DatasetError(f"{csv_path} line {line}: empty track_id")
        tracks.setdefault(tid, []).append((line, row))
        if row["playlist_name"]:
            playlists.setdefault(row["playlist_name"], set()).add(tid)

    items = []
    for tid, entries in tracks.items():
        first = entries[0][1]
        items.append(Item(
            id=tid,
            fields={"title": first["track_name"], "artist": first["track_artist"],
                    "album": first["track_album_name"],
                    "genre": _most_common([r["playlist_genre"] for _, r in entries]),
                    "subgenre": _most_common([r["playlist_subgenre"] for _, r in entries])},
            popularity=max(_popularity(r["track_popularity"], line) for line, r in entries),
            year=_year(first["track_album_release_date"])))

    every = QuerySet(queries={}, qrels={})
    parts = {"train": QuerySet(queries={}, qrels={}), "test": QuerySet(queries={}, qrels={})}
    for name in sorted(playlists):
        qid = query_id(name)
        if qid in every.queries:  # an md5 prefix collision would silently merge two playlists
            raise DatasetError(f"playlist names {every.queries[qid]!r} and {name!r} hash to the same id {qid}")
        qrels = {tid: 1 for tid in sorted(playlists[name])}
        for qs in (every, parts[split_of(name)]):
            qs.queries[qid] = name
            qs.qrels[qid] = dict(qrels)
            qs.intents[qid] = "playlist"
    pop = {it.id: it.popularity for it in items}
    members: dict[str, tuple[str, set[str]]] = {}  # entity id -> (first name, tracks); names that
    for name, tids in sorted(playlists.items()):     # normalize alike are one playlist entity
        members.setdefault(entity_id("playlist", name), (name, set()))[1].update(tids)
    lists = [Entity(eid, "playlist", name, sorted(tids, key=lambda t: (-pop[t], t)),
                    popularity=round(sum(pop[t] for t in tids), 4)) for eid, (name, tids) in members.items()]
    return Dataset(name="spotify", spec=str(path), items=items, schema=SCHEMA,
                   splits={"train": parts["train"], "test": parts["test"], "all": every}, entities=lists)
