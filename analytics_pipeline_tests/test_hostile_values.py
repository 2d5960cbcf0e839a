"""Issue 10: hostile values and files, each dropped in the watched folder and loaded through the real assets.

A poison value (an amount of 1e20, a 10 MB product, the year 9999) must cost one rejected row, never the daily
tables; a file that cannot be read sensibly (a gzip bomb, a header with no end, a NUL byte, JSON nested past
Python's stack) must be quarantined or lose one line with a reason, never fail the run or exhaust memory.
"""

import gzip
import json
import resource
import zlib

import pytest
import sqlalchemy as sa

from analytics_pipeline.ingestion import reader
from analytics_pipeline.ingestion.settings import MAPPINGS_ENV, MappingFileError, settings_for
from analytics_pipeline_tests.conftest import load_uploads, refresh_days

HEADER = "order_id,occurred_at,customer_id,product,quantity,unit_price,amount"
GOOD = [f"G-{n},2026-03-0{1 + n % 3} 10:00,c{n},tea,1,4.00,4.00" for n in range(12)]  # 48.00 over three days
RANGE = "(|x| <= 1,000,000,000,000)"
DAILY_TABLES = ["daily_metrics", "daily_region_metrics", "daily_product_metrics", "daily_company_metrics"]
LONG = 5 << 20  # a CSV record must fit in one 8 MiB block; 5 MiB is as poisonous as the review's 10 MB


def _rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql), params)]


def _load(instance, folders, engine: sa.Engine, name: str, content: bytes) -> dict:
    """Drop one file and run raw_uploads + transactions for it (each run must succeed); its registry row."""
    upload = folders.uploads_path / name
    upload.write_bytes(content)
    [key] = load_uploads(instance, folders, [upload])
    [registry] = _rows(
        engine,
        "SELECT status, rows_read, rows_loaded, rows_rejected, reason FROM analytics.ingested_files "
        "WHERE file_key = :key",
        key=key,
    )
    return dict(zip(("status", "read", "loaded", "rejected", "reason"), registry, strict=True))


def _rejected(engine: sa.Engine) -> list[tuple[int, str]]:
    return _rows(engine, "SELECT line_number, reason FROM analytics.rejected_rows ORDER BY line_number")


def _csv(*lines: str) -> bytes:
    return "".join(line + "\n" for line in (HEADER, *lines)).encode()


@pytest.fixture(autouse=True)
def no_mapping_file(monkeypatch):
    monkeypatch.delenv(MAPPINGS_ENV, raising=False)
    for variable in (reader.MAX_DECOMPRESSED_ENV, reader.MAX_RATIO_ENV):
        monkeypatch.delenv(variable, raising=False)


# Poison values -----------------------------------------------------------------------------------------------


def test_poison_values_are_rejected_row_by_row_and_the_daily_tables_still_build(instance, folders, engine):
    poison = [
        "P-1,2026-03-01 10:00,c1,tea,1,,1e20",  # line 14: every daily table failed on "numeric field overflow"
        "P-2,2026-03-01 10:00,c1," + "x" * LONG + ",1,,3.00",  # 15: daily_product_metrics "index row requires"
        "P-3,2026-03-01 10:00," + "c" * 501 + ",tea,1,,3.00",  # 16
        "P-4,2026-03-01 10:00,c1,tea,10000000000000,1.00,",  # 17
        "P-5,2026-03-01 10:00,c1,tea,1,-1000000000000.01,",  # 18
        "P-6,2026-03-01 10:00,c1,tea,10000000,1000000,",  # 19: each in range, their product is not
        "P-7,2026-03-01 10:00,c1,tea,0.000000001,,2000",  # 20: a derived unit price of 2e12
        "P-8,0001-01-01 BC,c1,tea,1,,3.00",  # 21: read back as a Python date, it raised ValueError
        "P-9,9999-12-31T23:00-05:00,c1,tea,1,,3.00",  # 22: the year 10000 in UTC
        "P-10,1899-12-31 23:59,c1,tea,1,,3.00",  # 23
        "E-1,2026-03-02 10:00,c1," + "y" * 500 + ",1,,-1000000000000",  # 24: on every limit, accepted
        "E-2,2100-12-31 23:59:59+00,c1,tea,1,1000000000000,",  # 25
    ]
    registry = _load(instance, folders, engine, "poison.csv", _csv(*GOOD, *poison))

    assert registry == {"status": "loaded", "read": 24, "loaded": 14, "rejected": 10, "reason": None}
    assert _rejected(engine) == [
        (14, f"amount '1e20' out of range {RANGE}"),
        (15, f"product has {LONG} characters, more than the 500 allowed"),
        (16, "customer_id has 501 characters, more than the 500 allowed"),
        (17, f"quantity '10000000000000' out of range {RANGE}"),
        (18, f"unit price '-1000000000000.01' out of range {RANGE}"),
        (19, f"amount 10000000000000 (quantity x unit price) out of range {RANGE}"),
        (20, f"unit price 2000000000000.000000000 (amount / quantity) out of range {RANGE}"),
        (21, "timestamp '0001-01-01 BC' outside the accepted dates 1900-01-01..2100-12-31"),
        (22, "timestamp '9999-12-31T23:00-05:00' outside the accepted dates 1900-01-01..2100-12-31"),
        (23, "timestamp '1899-12-31 23:59' outside the accepted dates 1900-01-01..2100-12-31"),
    ]
    assert _rows(engine, "SELECT sum(amount), min(day)::text, max(day)::text FROM analytics.transactions") == [
        (48, "2026-03-01", "2100-12-31")  # the good rows' 48.00, and -10^12 and +10^12 on the limits
    ]

    refresh_days(instance, "2026-03-01", "2026-03-03", selection=DAILY_TABLES)  # asserts that the run succeeded
    assert _rows(engine, "SELECT day::text, revenue FROM analytics.daily_metrics WHERE revenue <> 0 ORDER BY day") == [
        ("2026-03-01", 16), ("2026-03-02", -1000000000000 + 16), ("2026-03-03", 16)
    ]
    [(longest,)] = _rows(engine, "SELECT max(length(product)) FROM analytics.daily_product_metrics")
    assert longest == 500


def test_the_accepted_dates_are_set_per_file_in_the_mapping_file(instance, folders, engine, tmp_path, monkeypatch):
    mapping = tmp_path / "column_mappings.toml"
    mapping.write_text(
        '[defaults]\nmax_date = "2026-03-03"\n\n[[files]]\npattern = "ledger_*"\nmin_date = 2026-03-02\n'
    )
    monkeypatch.setenv(MAPPINGS_ENV, str(mapping))

    registry = _load(instance, folders, engine, "ledger_march.csv", _csv(*GOOD))
    assert registry == {"status": "loaded", "read": 12, "loaded": 8, "rejected": 4, "reason": None}
    outside = "timestamp '2026-03-01 10:00' outside the accepted dates 2026-03-02..2026-03-03"
    assert _rejected(engine) == [(line, outside) for line in (2, 5, 8, 11)]
    assert settings_for("other.csv", mapping).min_date.isoformat() == "1900-01-01"  # the defaults' own min_date


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        ("[defaults]\ncancellation_pattern = '^C[0-9'\n", "invalid cancellation_pattern '^C[0-9': unterminated "),
        ("[defaults]\nmin_date = 2030-01-01\nmax_date = 2020-01-01\n", "min_date 2030-01-01 is after max_date"),
        ("[defaults]\nmin_date = 'last year'\n", "min_date must be a date such as 1900-01-01, not 'last year'"),
    ],
)
def test_a_broken_mapping_file_names_itself_and_the_bad_setting(tmp_path, toml, error):
    mapping = tmp_path / "column_mappings.toml"
    mapping.write_text(toml)
    with pytest.raises(MappingFileError) as raised:
        settings_for("orders.csv", mapping)
    assert str(raised.value).startswith(f"{mapping}: {error}")
    assert isinstance(raised.value, reader.UNREADABLE)  # raw_uploads quarantines the file with this reason


# Bytes the warehouse cannot store, JSON Python cannot parse ---------------------------------------------------


def test_a_nul_byte_rejects_its_row_and_the_rest_of_the_file_loads(instance, folders, engine):
    content = (
        HEADER + ",note\n"
        "N-1,2026-03-01 10:00,c1,tea,1,4.00,4.00,ok\n"
        "N-2,2026-03-01 11:00,c1,co\x00ffee,1,4.00,4.00,ok\n"  # COPY refused the whole file for this byte
        "N-3,2026-03-01 12:00,c1,cake,1,4.00,4.00,not\x00mapped\n"  # in a column nobody reads: loads
        "N-4,2026-03-01 13:00,c1,cake,1,4.00,4.00,x,extra\x00\n"
    ).encode()
    registry = _load(instance, folders, engine, "till_roll.csv", content)

    assert registry == {"status": "loaded", "read": 4, "loaded": 2, "rejected": 2, "reason": None}
    rejected = _rows(engine, "SELECT line_number, reason, raw_line FROM analytics.rejected_rows ORDER BY 1")
    assert [(line, reason) for line, reason, _ in rejected] == [
        (3, "malformed line: NUL byte in product"),
        (5, "malformed line: expected 8 fields, found 9"),
    ]
    assert json.loads(rejected[0][2])["product"] == "co\ufffdffee"
    assert rejected[1][2] == "N-4,2026-03-01 13:00,c1,cake,1,4.00,4.00,x,extra\ufffd"
    assert _rows(engine, "SELECT order_id FROM analytics.transactions ORDER BY 1") == [("N-1",), ("N-3",)]


def test_json_nested_past_the_stack_and_a_line_past_the_block_are_rejected_alone(instance, folders, engine):
    record = {"order_id": "J-1", "timestamp": "2026-03-01T10:00:00Z", "amount": 2.5}
    lines = [
        json.dumps(record),
        "[" * 100_000 + "]" * 100_000,  # RecursionError, which is no ValueError: it failed the run
        json.dumps(record | {"order_id": "J-2", "note": "z" * reader.MAX_LINE_BYTES}),
        json.dumps(record | {"order_id": "J-3"}),
    ]
    registry = _load(instance, folders, engine, "events.jsonl", "\n".join(lines).encode() + b"\n")

    assert registry == {"status": "loaded", "read": 4, "loaded": 2, "rejected": 2, "reason": None}
    assert _rejected(engine) == [
        (2, "malformed line: invalid JSON: nested too deeply"),
        (3, f"malformed line: invalid JSON: line longer than {reader.MAX_LINE_BYTES:,} bytes"),
    ]
    [(kept,)] = _rows(engine, "SELECT octet_length(raw_line) FROM analytics.rejected_rows WHERE line_number = 3")
    assert kept == reader.MAX_LINE_BYTES  # what was read of it, never the whole line
    assert _rows(engine, "SELECT order_id FROM analytics.transactions ORDER BY 1") == [("J-1",), ("J-3",)]


# Bounded resources -------------------------------------------------------------------------------------------

BOMB_BYTES = 400 << 20


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> bytes:
    """400 MiB of one byte and no newline, gzipped to about 400 KB (deflate's ceiling of ~1,030x)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header
    chunk = b"a" * (1 << 20)
    return b"".join([deflate.compress(chunk) for _ in range(BOMB_BYTES >> 20)] + [deflate.flush()])


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@pytest.mark.parametrize("limit", [None, 64 << 20], ids=["ratio", "configured-size"])
def test_a_gzip_bomb_is_quarantined_without_inflating_it_in_memory(
    instance, folders, engine, gzip_bomb, monkeypatch, limit
):
    if limit:
        monkeypatch.setenv(reader.MAX_DECOMPRESSED_ENV, str(limit))
        why = f"more than {limit:,} bytes (the limit {reader.MAX_DECOMPRESSED_ENV})"
    else:
        why = (
            f"more than 1,000 times its {len(gzip_bomb):,} bytes (the limit {reader.MAX_RATIO_ENV}): "
            "a compression bomb"
        )
    peak_before = _peak_rss_bytes()

    registry = _load(instance, folders, engine, "export.csv.gz", gzip_bomb)

    assert registry == {
        "status": "quarantined", "read": 0, "loaded": None, "rejected": None,
        "reason": f"cannot read: the gzip inflates to {why}",
    }
    # Inflating the line whole took 4 GB for the 2.5 GiB bomb of the review; streaming costs a few buffers.
    assert _peak_rss_bytes() - peak_before < BOMB_BYTES // 4


def test_a_corrupt_gzip_is_quarantined(instance, folders, engine):
    content = bytearray(gzip.compress(_csv(*GOOD), mtime=0))
    content[20:40] = b"\xff" * 20
    registry = _load(instance, folders, engine, "orders.csv.gz", bytes(content))
    assert registry["status"] == "quarantined"
    assert registry["reason"].startswith("cannot read: Error -3 while decompressing data")


def test_a_header_line_past_the_limit_is_quarantined(instance, folders, engine):
    # The review's 50 MB line of 5.9M commas spun for minutes in the quadratic duplicate-column check.
    header = ",".join(f"c{n}" for n in range(300_000))  # 2.2 MB
    registry = _load(instance, folders, engine, "wide.csv", (header + "\n1,2,3\n").encode())
    assert registry == {
        "status": "quarantined", "read": 0, "loaded": None, "rejected": None,
        "reason": f"cannot read: the header line is longer than {reader.MAX_HEADER_BYTES:,} bytes",
    }


def test_too_many_columns_are_quarantined_and_many_duplicates_are_named_briefly(instance, folders, engine):
    too_many = ",".join(f"c{n}" for n in range(reader.MAX_COLUMNS + 1))
    registry = _load(instance, folders, engine, "many.csv", (too_many + "\n").encode())
    assert (registry["status"], registry["reason"]) == (
        "quarantined", "cannot read: the header has 10,001 columns, more than the 10,000 the loader reads"
    )

    repeated = ",".join(["occurred_at", "amount"] + [f"c{n % 4_999}" for n in range(9_998)])
    registry = _load(instance, folders, engine, "repeated.csv", (repeated + "\n").encode())
    names = ", ".join(f"'c{n}'" for n in range(50))
    assert (registry["status"], registry["reason"]) == (
        "quarantined",
        f"duplicate column name(s) {names} and 4,949 more: the file has columns 'occurred_at', 'amount', "
        + ", ".join(f"'c{n}'" for n in range(48))
        + " and 9,950 more",
    )
