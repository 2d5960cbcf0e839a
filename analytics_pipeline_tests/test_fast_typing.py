"""The fast path takes only rows whose meaning is beyond doubt, and types them exactly as the SQL typing would.

Its equivalence with the SQL typing over real exports is test_corpus.py's (every case runs both ways); these are the
rules on single hand-made rows.
"""

import hashlib

import pyarrow as pa
import pytest

from analytics_pipeline.ingestion.fast_typing import FastTyping
from analytics_pipeline.ingestion.reader import RAW_COLUMNS
from analytics_pipeline.ingestion.settings import FileSettings


def _batch(*rows: dict) -> pa.Table:
    columns = {name: pa.array([row.get(name) for row in rows], pa.string()) for name in RAW_COLUMNS}
    columns["file_key"] = pa.array(["f"] * len(rows), pa.string())
    columns["line_number"] = pa.array(range(2, 2 + len(rows)), pa.int64())
    return pa.table(columns)


def _split(settings: FileSettings, *rows: dict):
    typing = FastTyping(settings)
    try:
        split = typing.split(_batch(*rows))
        return split.typed.to_pylist(), split.rest.column("line_number").to_pylist(), typing.duplicate_lines()
    finally:
        typing.close()


PLAIN = {"order_id": "536365", "occurred_at": "12/1/2010 8:26", "quantity": "6", "unit_price": "2.55"}


def test_a_plain_row_is_typed_as_sql_types_it():
    [typed], rest, _ = _split(FileSettings(), PLAIN | {"customer_id": " 17850 ", "region": "United Kingdom"})
    assert rest == []
    assert typed == {
        "transaction_id": "294d8c360b0eaca3fffed4cf47d58c20",  # see the next test
        "order_id": "536365",
        "occurred_at": "2010-12-01 08:26:00",
        "day": "2010-12-01",
        "customer_id": "17850",
        "company": None,
        "region": "United Kingdom",
        "product": None,
        "quantity": "6",
        "unit_price": "2.55",
        "amount": "15.30",  # at the scale Postgres gives quantity * unit_price
        "currency": None,
        "is_cancellation": False,
        "source_line": 2,
    }


def test_the_content_id_is_postgres_md5_of_the_values():
    """md5 of the untrimmed values joined by "|", NULLs skipped, as Postgres's concat_ws."""
    [typed], _, _ = _split(FileSettings(), PLAIN | {"customer_id": " 17850 ", "region": "United Kingdom"})
    joined = "|".join(["536365", "12/1/2010 8:26", " 17850 ", "United Kingdom", "6", "2.55"])
    assert typed["transaction_id"] == hashlib.md5(joined.encode()).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": "2/30/2010 8:26"},  # no such day: Postgres says so
        {"occurred_at": "12/1/10 8:26"},  # a two-digit year
        {"occurred_at": "2010-12-01 08:26:00+01"},  # an offset
        {"occurred_at": "1 Dec 2010"},  # words
        {"quantity": "1,5"},  # a decimal comma
        {"quantity": ""},  # missing
        {"unit_price": "$2.55"},  # formatted
        {"unit_price": "0.0000001"},  # more decimals than a product keeps exactly
        {"unit_price": None, "amount": "15.30"},  # the price must be derived by division
        {"quantity": "999999999999", "unit_price": "999999"},  # a product out of range
        {"order_id": " "},  # a blank order id
        {"product": "x" * 501},  # too long
        {"parse_error": "expected 8 fields, found 9"},
    ],
)
def test_a_row_with_anything_to_decide_is_left_to_postgres(change):
    typed, rest, _ = _split(FileSettings(), PLAIN | change)
    assert (typed, rest) == ([], [2])


def test_the_file_settings_decide_day_order_and_zone():
    [typed], _, _ = _split(FileSettings(day_first=True), PLAIN)
    assert typed["occurred_at"] == "2010-01-12 08:26:00"
    # A file in a zone other than UTC is Postgres's to type, row by row: it places zone-less times (daylight
    # saving) and dates every row in that zone, an explicit Z included.
    berlin = FileSettings(timezone="Europe/Berlin")
    typed, rest, _ = _split(berlin, PLAIN, PLAIN | {"occurred_at": "2010-12-01T23:26:00.5Z"})
    assert rest == [2, 3] and typed == []  # the lines after the header


def test_dates_outside_the_accepted_range_are_left_to_postgres():
    settings = FileSettings()
    typed, rest, _ = _split(settings, PLAIN | {"occurred_at": "1899-12-31"}, PLAIN | {"occurred_at": "1900-01-01"})
    assert rest == [2] and [t["day"] for t in typed] == ["1900-01-01"]


def test_amounts_quantities_and_cancellations():
    typed, _, _ = _split(
        FileSettings(),
        PLAIN | {"quantity": "0"},
        PLAIN | {"order_id": "C536379", "quantity": "-1", "unit_price": "27.50"},
        PLAIN | {"quantity": None, "amount": " 7.10 "},
        PLAIN | {"order_id": None, "quantity": "3", "unit_price": "0.125"},
    )
    # A derived amount has the batch's scale: the most decimals of a quantity plus the most of a unit price (3).
    assert [(t["quantity"], t["amount"], t["is_cancellation"]) for t in typed] == [
        ("0", "0.000", False),
        ("-1", "-27.500", True),
        ("1", "7.10", False),  # given: kept as written
        ("3", "0.375", False),
    ]
    assert typed[3]["order_id"] == typed[3]["transaction_id"]  # no order id: the line is its own order


def test_the_last_copy_of_an_id_wins():
    _, _, duplicates = _split(FileSettings(), PLAIN, PLAIN | {"product": "other"}, PLAIN, PLAIN)
    assert sorted(duplicates) == [2, 4]  # lines 2, 4 and 5 are the same line; 5 is kept
