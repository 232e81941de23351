"""Your own catalogue: a CSV, JSONL or Parquet file of items described by a small schema file.

`ltrr index --dataset shop.schema.yaml` (or `--dataset books.csv`, with `books.schema.yaml`
beside it) reads the schema, then the items, and optionally queries and judgments:

    name: bookshop
    items: books.csv                 # CSV, JSONL (one object a line) or Parquet; relative to this file
    id: isbn                         # the column holding each item's unique id
    text_fields: {book_title: 3, writer: 2, blurb: 1}     # searchable columns, with BM25 boosts
    category_fields: [shelf, format] # categorical columns: query understanding, per-category popularity
    entity_fields: [book_title, writer, series]           # what users type as names (default: text
                                     # fields with boost >= 2)
    dense_fields: [book_title, writer, blurb]             # embedded text, in order (default: text fields)
    popularity: ratings              # optional non-negative number column
    year: first_published            # optional: a year, or a date whose first 4 characters are one
    entities: {writer: [writer], series: [series, writer]}  # related entities (core.entities)
    queries: queries.csv             # optional: query_id, query, and optionally split, intent
    qrels: qrels.csv                 # optional: query_id, item_id, grade (> 0 is relevant)

Every column the schema names becomes an item field of the same name. Errors name the
file, the line (CSV and JSONL; the row for Parquet) and the column.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import DatasetError
from core.model import Dataset, Item, QuerySet, Schema

SUFFIXES = (".csv", ".jsonl", ".parquet")
SCHEMA_SUFFIX = ".schema.yaml"


class TableSchema(BaseModel):
    """The schema file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="the dataset's name")
    items: str = Field(description="the items file (CSV, JSONL or Parquet), relative to the schema file")
    id: str = Field(description="column with each item's unique id")
    text_fields: dict[str, float] = Field(min_length=1, description="searchable columns and their BM25 boosts")
    category_fields: list[str] = Field(default_factory=list, description="categorical columns")
    entity_fields: list[str] | None = Field(None, description="columns whose values users type as names")
    dense_fields: list[str] | None = Field(None, description="columns embedded for dense retrieval, in order")
    popularity: str | None = Field(None, description="non-negative numeric column: the popularity prior")
    year: str | None = Field(None, description="year (or date) column")
    entities: dict[str, list[str]] = Field(default_factory=dict,
                                           description="entity type -> [name column, qualifier columns...]")
    lexical_mode: str = Field("multifield", pattern="^(flat|multifield)$", description="BM25 layout")
    queries: str | None = Field(None, description="queries file: query_id, query[, split, intent]")
    qrels: str | None = Field(None, description="judgments file: query_id, item_id, grade")

    def columns(self) -> list[str]:
        cols = [*self.text_fields, *self.category_fields, *(self.entity_fields or []), *(self.dense_fields or []),
                *(c for cs in self.entities.values() for c in cs)]
        return list(dict.fromkeys(c for c in cols if c != self.id))


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, row) for every row: where is 'FILE line N' (CSV, JSONL) or 'FILE row N' (Parquet)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                for n, row in enumerate(csv.DictReader(f), start=2):
                    yield f"{path.name} line {n}", row
        elif suffix == ".jsonl":
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{path.name} line {n}: not JSON ({exc.msg})") from None
                    if not isinstance(row, dict):
                        raise DatasetError(f"{path.name} line {n}: expected a JSON object")
                    yield f"{path.name} line {n}", row
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            for n, row in enumerate(pq.read_table(path).to_pylist(), start=1):
                yield f"{path.name} row {n}", row
        else:
            raise DatasetError(f"{path}: expected a .csv, .jsonl or .parquet file")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DatasetError(f"{path} is not a readable CSV file: {exc}") from None


def _text(row: dict, col: str, where: str) -> str:
    if col not in row:
        raise DatasetError(f"{where}: no column {col!r} (it has: {', '.join(map(str, row))})")
    value = row[col]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _number(row: dict, col: str, where: str) -> float:
    raw = _text(row, col, where)
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise DatasetError(f"{where}, column {col!r}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetError(f"{where}, column {col!r}: {raw!r} must be a finite non-negative number")
    return value


def _year(row: dict, col: str, where: str) -> int | None:
    raw = _text(row, col, where)
    if not raw:
        return None
    head = raw[:4]
    if not head.isdigit() or not 1000 <= int(head) <= 2100:
        raise DatasetError(f"{where}, column {col!r}: {raw!r} is not a year or a date (YYYY...)")
    return int(head)


def read_schema(path: Path) -> TableSchema:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML ({exc})") from None
    try:
        return TableSchema.model_validate(raw)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise DatasetError(f"{path}: {errors}") from None


def schema_path_for(data: Path) -> Path:
    return data.with_name(data.name[: -len(data.suffix)] + SCHEMA_SUFFIX)


def load_table(spec: Path) -> Dataset:
    """Load a dataset from a schema file, or from a data file with `<stem>.schema.yaml` beside it."""
    spec = Path(spec)
    if spec.suffix.lower() in SUFFIXES:
        schema_file = schema_path_for(spec)
        if not schema_file.is_file():
            raise DatasetError(f"{spec}: no schema file {schema_file} beside it; see ingest/tabular.py or "
                               "examples/bookshop for its format")
    else:
        schema_file = spec
    ts = read_schema(schema_file)
    base = schema_file.parent
    items_path = base / ts.items
    cols = ts.columns()
    items: list[Item] = []
    seen: dict[str, str] = {}
    for where, row in _rows(items_path):
        item_id = _text(row, ts.id, where)
        if not item_id:
            raise DatasetError(f"{where}, column {ts.id!r}: empty id")
        if item_id in seen:
            raise DatasetError(f"{where}, column {ts.id!r}: id {item_id!r} repeats {seen[item_id]}")
        seen[item_id] = where
        items.append(Item(id=item_id, fields={c: _text(row, c, where) for c in cols},
                          popularity=_number(row, ts.popularity, where) if ts.popularity else 0.0,
                          year=_year(row, ts.year, where) if ts.year else None))
    if not items:
        raise DatasetError(f"{items_path} has no rows")
    schema = Schema(text_fields=dict(ts.text_fields), category_fields=list(ts.category_fields),
                    entity_fields=ts.entity_fields if ts.entity_fields is not None
                    else [f for f, b in ts.text_fields.items() if b >= 2],
                    dense_fields=ts.dense_fields or list(ts.text_fields), lexical_mode=ts.lexical_mode,
                    entity_types={k: list(v) for k, v in ts.entities.items()})
    splits = _splits(base, ts, set(seen)) if ts.queries else {}
    return Dataset(name=ts.name, spec=str(spec), items=items, schema=schema, splits=splits)


def _splits(base: Path, ts: TableSchema, ids: set[str]) -> dict[str, QuerySet]:
    splits: dict[str, QuerySet] = {}
    split_of: dict[str, str] = {}
    for where, row in _rows(base / str(ts.queries)):
        qid, text = _text(row, "query_id", where), _text(row, "query", where)
        if not qid or not text:
            raise DatasetError(f"{where}: query_id and query must not be empty")
        split = (row.get("split") or "test").strip() or "test"
        qs = splits.setdefault(split, QuerySet(queries={}, qrels={}))
        qs.queries[qid] = text
        if (row.get("intent") or "").strip():
            qs.intents[qid] = row["intent"].strip()
        split_of[qid] = split
    if ts.qrels:
        for where, row in _rows(base / ts.qrels):
            qid, item_id = _text(row, "query_id", where), _text(row, "item_id", where)
            if qid not in split_of:
                raise DatasetError(f"{where}, column 'query_id': unknown query {qid!r}")
            if item_id not in ids:
                raise DatasetError(f"{where}, column 'item_id': unknown item {item_id!r}")
            grade = _number(row, "grade", where)
            if grade != int(grade):
                raise DatasetError(f"{where}, column 'grade': {grade} is not a whole number")
            splits[split_of[qid]].qrels.setdefault(qid, {})[item_id] = int(grade)
    return splits
