"""Your own catalogue (ingest/tabular.py): the bookshop example, JSONL and Parquet, and errors
that name the file, the line and the column."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import DatasetError
from ingest.registry import load_dataset

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookshop"


def test_bookshop_example_loads_through_its_schema_file():
    ds = load_dataset(str(EXAMPLE / "books.csv"))
    assert ds.name == "bookshop" and len(ds.items) == 76
    item = ds.items[0]
    assert item.id == "978-1-00001-0" and item.fields["writer"] == "Ada Ashworth"
    assert item.year == 1984 and item.popularity == 525.0
    assert ds.schema.text_fields["book_title"] == 3 and ds.schema.category_fields == ["shelf", "format"]
    assert ds.schema.entity_types == {"writer": ["writer"], "series": ["series", "writer"]}
    assert set(ds.splits) == {"train", "test"} and ds.split("test").judged()
    assert load_dataset(str(EXAMPLE / "books.schema.yaml")).fingerprint() == ds.fingerprint()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    for f in EXAMPLE.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def test_jsonl_and_parquet_items(shop: Path):
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(csv.DictReader((shop / "books.csv").open()))
    (shop / "books.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), shop / "books.parquet")
    base = load_dataset(str(shop / "books.csv")).fingerprint()
    for suffix in ("jsonl", "parquet"):
        _edit(shop / "books.schema.yaml", "items: books.csv" if suffix == "jsonl" else "items: books.jsonl",
              f"items: books.{suffix}")
        assert load_dataset(str(shop / "books.schema.yaml")).fingerprint() == base


@pytest.mark.parametrize(("file", "old", "new", "message"), [
    ("books.csv", ",525\n", ",lots\n", "books.csv line 2, column 'ratings': 'lots' is not a number"),
    ("books.csv", ",1984-06-22,", ",June 84,", "books.csv line 2, column 'first_published'"),
    ("books.csv", "978-1-00002-1", "978-1-00001-0", "books.csv line 3, column 'isbn': id '978-1-00001-0' repeats "
                                                    "books.csv line 2"),
    ("books.schema.yaml", "id: isbn", "id: sku", "books.csv line 2: no column 'sku'"),
    ("books.schema.yaml", "text_fields:", "text_feilds:", "text_fields: Field required; text_feilds: Extra inputs"),
    ("qrels.csv", "q001,978-1-", "q001,999-1-", "qrels.csv line 2, column 'item_id': unknown item"),
])
def test_errors_name_the_line_and_the_column(shop: Path, file, old, new, message):
    _edit(shop / file, old, new)
    with pytest.raises(DatasetError) as err:
        load_dataset(str(shop / "books.csv"))
    assert message in str(err.value)


def test_a_data_file_needs_its_schema_file(tmp_path: Path):
    (tmp_path / "items.csv").write_text("id,title\n1,x\n")
    with pytest.raises(DatasetError, match=r"no schema file .*items\.schema\.yaml"):
        load_dataset(str(tmp_path / "items.csv"))
