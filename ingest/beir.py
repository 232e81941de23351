"""Load a BEIR-layout directory: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

Malformed input fails with a DatasetError that names the file and line, never a bare
traceback, because users point `ltrr index --dataset DIR` at their own data.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from core.errors import DatasetError
from core.model import Dataset, Item, QuerySet, Schema

BEIR_SCHEMA = Schema(text_fields={"title": 1.0, "text": 1.0}, category_fields=[], entity_fields=["title"],
                     dense_fields=["title", "text"], lexical_mode="flat")


def is_beir_dir(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file()


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing: a BEIR directory needs corpus.jsonl, queries.jsonl and qrels/")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise DatasetError(f"{path}:{n}: each line must be a JSON object with an \"_id\"")
            rows.append(row)
    if not rows:
        raise DatasetError(f"{path} is empty")
    return rows


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (n == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(f"{path}:{n}: expected query-id<TAB>corpus-id<TAB>score")
            try:
                grade = int(float(row[2]))
            except ValueError:
                raise DatasetError(f"{path}:{n}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = grade
    return qrels


def load_beir(path: Path) -> Dataset:
    """Read a BEIR directory into a Dataset with one QuerySet per qrels file."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"dataset directory {path} does not exist")
    items = []
    for row in _jsonl(path / "corpus.jsonl"):
        fields = {"title": str(row.get("title") or ""), "text": str(row.get("text") or "")}
        meta = row.get("metadata") or {}
        pop = meta.get("popularity", 0.0) if isinstance(meta, dict) else 0.0
        items.append(Item(id=str(row["_id"]), fields=fields, popularity=float(pop or 0.0)))
    queries = {str(r["_id"]): str(r.get("text") or "") for r in _jsonl(path / "queries.jsonl")}
    qrels_dir = path / "qrels"
    files = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    if not files:
        raise DatasetError(f"{qrels_dir} has no <split>.tsv files")
    ids = {it.id for it in items}
    splits = {}
    for f in files:
        qrels = _qrels(f)
        unknown = [q for q in qrels if q not in queries]
        if unknown:
            raise DatasetError(f"{f}: {len(unknown)} query ids are not in queries.jsonl (e.g. {unknown[0]!r})")
        qrels = {q: {d: g for d, g in docs.items() if d in ids} for q, docs in qrels.items()}
        splits[f.stem] = QuerySet(queries={q: queries[q] for q in qrels}, qrels=qrels)
    return Dataset(name=path.name, spec=str(path), items=items, schema=BEIR_SCHEMA, splits=splits)
