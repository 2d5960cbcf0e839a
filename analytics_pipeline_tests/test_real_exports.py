"""Faults found by loading exports nobody here wrote (a review with Shopify-, Stripe-, Excel-, Parquet- and
JSON-shaped files), each pinned with exact expected rows through the real assets."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from analytics_pipeline.ingestion.settings import MAPPINGS_ENV
from analytics_pipeline_tests.conftest import load_uploads


@pytest.fixture(autouse=True)
def no_mapping_file(monkeypatch):
    monkeypatch.delenv(MAPPINGS_ENV, raising=False)


def _load(instance, folders, engine: sa.Engine, name: str, write) -> tuple[tuple, list[tuple], list[tuple]]:
    """Drop one file (``write(path)`` writes it) and load it; its registry counts, rejected rows and loaded rows."""
    path = folders.uploads_path / name
    write(path)
    [key] = load_uploads(instance, folders, [path])
    with engine.connect() as conn:
        counts = conn.execute(sa.text(
            "SELECT status, rows_read, rows_loaded, rows_rejected FROM analytics.ingested_files WHERE file_key = :k"
        ), {"k": key}).one()
        rejected = conn.execute(sa.text(
            "SELECT line_number, reason FROM analytics.rejected_rows WHERE file_key = :k ORDER BY line_number"
        ), {"k": key}).all()
        loaded = conn.execute(sa.text(
            "SELECT order_id, quantity::text, amount::text FROM analytics.transactions WHERE source = :k "
            "ORDER BY source_line"
        ), {"k": key}).all()
    return tuple(counts), [tuple(r) for r in rejected], [tuple(r) for r in loaded]


def test_a_null_quantity_is_missing_in_json_and_parquet_as_an_empty_csv_field_is(instance, folders, engine):
    """Before: a null or absent quantity in JSON lines or Parquet loaded as 1 (4.95 of revenue from nothing)."""
    lines = [
        {"order_id": "A-1", "created_at": "2026-03-02T10:00:00Z", "qty": 2, "price": "4.95"},
        {"order_id": "A-2", "created_at": "2026-03-02T11:00:00Z", "qty": None, "price": "4.95"},
        {"order_id": "A-3", "created_at": "2026-03-02T12:00:00Z", "price": "4.95"},  # no qty key at all
        {"order_id": "A-4", "created_at": "2026-03-02T13:00:00Z", "qty": "1", "price": "4.95"},
        {"order_id": "A-5", "created_at": "2026-03-02T14:00:00Z", "qty": 3, "price": "4.95"},
    ]
    counts, rejected, loaded = _load(
        instance, folders, engine, "items.jsonl",
        lambda path: path.write_text("".join(json.dumps(line) + "\n" for line in lines)),
    )
    assert counts == ("loaded", 5, 3, 2)
    assert rejected == [(2, "missing quantity"), (3, "missing quantity")]
    assert loaded == [("A-1", "2", "9.90"), ("A-4", "1", "4.95"), ("A-5", "3", "14.85")]

    table = pa.table({
        "order_id": ["P-1", "P-2", "P-3"],
        "occurred_at": pa.array([1772445600000000, 1772449200000000, 1772452800000000], pa.timestamp("us", tz="UTC")),
        "quantity": pa.array([3, None, 1], pa.int64()),
        "unit_price": pa.array(["1.50", "1.50", "2.00"]),
    })
    counts, rejected, loaded = _load(
        instance, folders, engine, "lines.parquet", lambda path: pq.write_table(table, path)
    )
    assert counts == ("loaded", 3, 2, 1)
    assert rejected == [(2, "missing quantity")]
    assert loaded == [("P-1", "3", "4.50"), ("P-3", "1", "2.00")]


def test_a_file_without_a_quantity_column_sells_one_of_each(instance, folders, engine):
    lines = [{"order_id": "B-1", "created_at": "2026-03-02T10:00:00Z", "amount": "12.00"}]
    counts, rejected, loaded = _load(
        instance, folders, engine, "payments.jsonl",
        lambda path: path.write_text("".join(json.dumps(line) + "\n" for line in lines)),
    )
    assert (counts, rejected, loaded) == (("loaded", 1, 1, 0), [], [("B-1", "1", "12.00")])


def test_dotted_dates_are_day_first_without_any_setting(instance, folders, engine):
    """An Excel 'Save as CSV' from a German shop, no mapping file: 02.03.2026 is 2 March. Before, the dates were
    read month-first and a week of sales spread over five months, one day each."""
    content = (
        "Invoice;Date;Quantity;Price\r\n"
        "R-1;02.03.2026;1;10,00\r\n"
        "R-2;06.03.2026 17:45;2;5,50\r\n"
        "R-3;12.01.2026;1;3,00\r\n"
        "R-4;03/04/2026;1;1,00\r\n"  # slashed: still the file's day_first (month first by default)
    ).encode("cp1252")
    counts, rejected, _ = _load(instance, folders, engine, "umsatz.csv", lambda path: path.write_bytes(content))
    assert (counts, rejected) == (("loaded", 4, 4, 0), [])
    with engine.connect() as conn:
        days = conn.execute(sa.text(
            "SELECT order_id, day::text, occurred_at AT TIME ZONE 'UTC' FROM analytics.transactions ORDER BY order_id"
        )).all()
    assert [(order, day, str(at)) for order, day, at in days] == [
        ("R-1", "2026-03-02", "2026-03-02 00:00:00"),
        ("R-2", "2026-03-06", "2026-03-06 17:45:00"),
        ("R-3", "2026-01-12", "2026-01-12 00:00:00"),
        ("R-4", "2026-03-04", "2026-03-04 00:00:00"),
    ]


def test_two_sales_alike_but_for_their_sale_id_are_two_sales(instance, folders, engine):
    """A point-of-sale report names its order column "Sale ID": before it was not recognised, so two sales of the
    same item on the same day had the same content id and the second was dropped as a duplicate."""
    content = (
        "Sale ID,Date,Item,Qty,Unit Price\n"
        "S-1001,2026-02-01,ESPRESSO,1,3.20\n"
        "S-1002,2026-02-01,ESPRESSO,1,3.20\n"
        "S-1002,2026-02-01,ESPRESSO,1,3.20\n"  # the same line twice in one export: counted once
    )
    counts, rejected, loaded = _load(instance, folders, engine, "sales.csv", lambda path: path.write_text(content))
    assert (counts, rejected) == (("loaded", 3, 2, 0), [])
    assert loaded == [("S-1001", "1", "3.20"), ("S-1002", "1", "3.20")]
