"""The catalogue as memory-mapped Arrow columns: one copy in the page cache for every process.

A million items as Python objects (`Item`: a dict of fields each) take about a gigabyte in
every process that loads them, and the service has several (the orchestrator shows display
fields, the ranker reads popularity, year and text). `ltrr index` therefore also writes:

- `catalog.arrow`: an Arrow IPC file with columns `id`, `popularity`, `year` and `fields`
  (the item's fields as JSON), uncompressed, so it can be memory-mapped;
- `catalog.ids.npy`: the ids sorted, as fixed-width bytes, and `catalog.rows.npy` their
  rows, loaded with `mmap_mode="r"`: an id is found by binary search without a
  per-process dictionary.

`MappedCatalog` is a read-only `Mapping[str, Item]` over those files: pages are shared
between processes through the page cache (they count once in PSS, not once per process in
USS), and an item becomes a Python object only when asked for, kept in a bounded LRU
cache so that hot items keep their identity (the ranker caches features per Item object).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from core.model import Item

ARROW, IDS, ROWS = "catalog.arrow", "catalog.ids.npy", "catalog.rows.npy"
SCHEMA = pa.schema([("id", pa.string()), ("popularity", pa.float64()), ("year", pa.int32()), ("fields", pa.string())])
BATCH = 50_000


def write_catalog(items: Iterable[Item], index_dir: Path) -> None:
    """Write the Arrow catalogue and its sorted id index under index_dir."""
    index_dir = Path(index_dir)
    ids: list[str] = []
    with pa.OSFile(str(index_dir / ARROW), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
        rows: dict[str, list] = {"id": [], "popularity": [], "year": [], "fields": []}
        for item in items:
            ids.append(item.id)
            rows["id"].append(item.id)
            rows["popularity"].append(float(item.popularity))
            rows["year"].append(item.year)
            rows["fields"].append(json.dumps(item.fields, ensure_ascii=False))
            if len(rows["id"]) >= BATCH:
                writer.write_batch(pa.record_batch(rows, schema=SCHEMA))
                rows = {k: [] for k in rows}
        if rows["id"]:
            writer.write_batch(pa.record_batch(rows, schema=SCHEMA))
    encoded = np.array([i.encode("utf-8") for i in ids], dtype=bytes) if ids else np.zeros(0, "S1")
    order = np.argsort(encoded, kind="stable")
    np.save(index_dir / IDS, encoded[order])
    np.save(index_dir / ROWS, order.astype(np.int64))


def has_catalog(index_dir: Path) -> bool:
    return all((Path(index_dir) / f).is_file() for f in (ARROW, IDS, ROWS))


class MappedCatalog(Mapping[str, Item]):
    """A read-only id -> Item mapping over the memory-mapped catalogue (see the module docstring)."""

    def __init__(self, index_dir: Path, cache_items: int = 65_536) -> None:
        index_dir = Path(index_dir)
        self._table = pa.ipc.open_file(pa.memory_map(str(index_dir / ARROW))).read_all()
        self._ids = self._table.column("id")
        self._pop = self._table.column("popularity")
        self._year = self._table.column("year")
        self._fields = self._table.column("fields")
        self._sorted = np.load(index_dir / IDS, mmap_mode="r")
        self._rows = np.load(index_dir / ROWS, mmap_mode="r")
        self._item = functools.lru_cache(maxsize=cache_items)(self._make)

    def _row(self, item_id: str) -> int:
        if not isinstance(item_id, str):
            return -1
        key = item_id.encode("utf-8")
        if len(self._sorted) == 0 or len(key) > self._sorted.dtype.itemsize:
            return -1
        pos = int(np.searchsorted(self._sorted, key))
        if pos < len(self._sorted) and self._sorted[pos] == key:
            return int(self._rows[pos])
        return -1

    def _make(self, row: int) -> Item:
        year = self._year[row].as_py()
        return Item(id=self._ids[row].as_py(), fields=json.loads(self._fields[row].as_py()),
                    popularity=float(self._pop[row].as_py() or 0.0), year=year)

    def __getitem__(self, item_id: str) -> Item:
        row = self._row(item_id)
        if row < 0:
            raise KeyError(item_id)
        return self._item(row)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self._row(item_id) >= 0

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[str]:
        for batch in self._ids.chunks:
            yield from batch.to_pylist()

    def values(self):
        return (self._make(r) for r in range(len(self._table)))
