"""Resolve a dataset spec to a Dataset: the one entry point the CLI, tests and benchmarks share.

Specs:
- `builtin:music-demo` (optionally `builtin:music-demo?n_tracks=500&seed=3`): generated here;
- a BEIR directory (`corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`), optionally written `beir:DIR`;
- a directory holding the Spotify `spotify_songs.csv`, optionally written `spotify:DIR`;
- your own catalogue: a schema file (`*.yaml`), or a CSV, JSONL or Parquet file with
  `<stem>.schema.yaml` beside it (`ingest/tabular.py`).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from core.errors import DatasetError
from core.model import Dataset

BUILTINS = ("music-demo",)


def _builtin(name: str, params: str) -> Dataset:
    if name != "music-demo":
        raise DatasetError(f"unknown builtin dataset {name!r}; known: {', '.join(BUILTINS)}")
    from ingest.music_demo import generate

    kwargs: dict[str, int] = {}
    for key, value in parse_qsl(params, keep_blank_values=True):
        if key not in ("seed", "n_tracks", "n_artists", "n_train", "n_test"):
            raise DatasetError(f"builtin:music-demo takes seed, n_tracks, n_artists, n_train, n_test; not {key!r}")
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise DatasetError(f"builtin:music-demo: {key} must be an integer, got {value!r}") from None
    ds = generate(**kwargs)
    ds.spec = f"builtin:{name}" + (f"?{params}" if params else "")
    return ds


def load_dataset(spec: str) -> Dataset:
    """Load the dataset named by `spec`; DatasetError with a clear message otherwise."""
    if not spec or not spec.strip():
        raise DatasetError("no dataset given")
    if spec.startswith("builtin:"):
        name, _, params = spec[len("builtin:"):].partition("?")
        return _builtin(name, params)
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("beir", "spotify"):
        path = Path(rest)
    else:
        kind, path = "", Path(spec)
    if not path.exists():
        raise DatasetError(f"dataset {spec!r}: {path} does not exist")
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml", ".csv", ".jsonl", ".parquet"):
        from ingest.tabular import load_table

        return load_table(path)
    if not path.is_dir():
        raise DatasetError(f"dataset {spec!r}: {path} is not a directory")
    if kind == "spotify" or (not kind and (path / "spotify_songs.csv").is_file()):
        from ingest.spotify import load_spotify

        return load_spotify(path)
    if kind == "beir" or (path / "corpus.jsonl").is_file():
        from ingest.beir import load_beir

        return load_beir(path)
    raise DatasetError(f"dataset {spec!r}: {path} is neither a BEIR directory (corpus.jsonl, queries.jsonl, "
                       "qrels/) nor a Spotify directory (spotify_songs.csv)")
