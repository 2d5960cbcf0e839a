"""Issue 3's corpus: small real-shaped files, each loaded through the real assets, with its outcome written by hand.

Every file under ``corpus/`` is a case in ``CASES`` (or in the file-versions tests below): it is dropped in the
watched folder, ``raw_uploads`` + ``transactions`` run for its partition as the sensor's run would (a quarantined
file is still a successful run), and the test checks exactly what the table says: the registry row, every rejected
line with its reason, where the file ended and that it is byte-identical, what the assets reported, and for loaded
files the sum of amount, the first and last timestamp (UTC) and a few rows field by field. The expected values
were computed by hand from the files, not by running the code. A case with ``bug`` set, and each test marked
``xfail(strict=True)``, states the behaviour the code should have and fails until the bug is fixed.

Binary and byte-exact files (Parquet, gzip, xlsx, Windows-1252, BOM, CRLF, tabs) come from
``corpus/make_binary_cases.py``; the rest are plain UTF-8 text, committed as they are.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from analytics_pipeline.assets.transactions import ACCEPTED_ROWS_CHECK, BOOKS_CHECK
from analytics_pipeline.assets.uploads import ACCEPTED_CHECK
from analytics_pipeline.ingestion.settings import MAPPINGS_ENV
from analytics_pipeline.warehouse import canonical
from analytics_pipeline_tests.conftest import load_uploads

CORPUS = Path(__file__).parent / "corpus"

HINT = " (the day comes first? set day_first = true for this file in the mapping file)"
NEEDS = "it needs a timestamp column and either an amount column or quantity and unit price columns"
UNSUPPORTED = (
    "the watched folder reads .csv, .csv.gz, .jsonl, .jsonl.gz, .ndjson, .ndjson.gz, .parquet, .tsv, .tsv.gz"
)
ERP_COLUMNS = (
    "'Belegnummer', 'Belegdatum', 'Kunde', 'Land', 'Artikel', 'Bezeichnung', 'Menge', 'Einzelpreis', "
    "'Gesamtbetrag', 'Währung'"
)
ERP_MAPPING = """
[[files]]
pattern = "erp_export_*.csv"
day_first = true
timezone = "Europe/Berlin"
cancellation_pattern = "^ST-"
columns = { order_id = "Belegnummer", occurred_at = "Belegdatum", customer_id = "Kunde", region = "Land", product = "Artikel", quantity = "Menge", unit_price = "Einzelpreis", amount = "Gesamtbetrag", currency = "Währung" }
"""


def row(line: int, **expected) -> tuple[int, dict]:
    """One transaction, found by its source line, with the fields to check (timestamps in UTC)."""
    return line, expected


@dataclass(frozen=True)
class Case:
    file: str  # under corpus/; dropped in the watched folder under its own name
    status: str  # ingested_files.status: loaded | quarantined
    read: int = 0  # rows_read (0 when the file could not be read at all)
    loaded: int = 0  # rows_loaded (0 when quarantined)
    rejected: int = 0
    duplicates: int = 0
    rejects: tuple[tuple[int, str], ...] = ()  # (line, reason) of every rejected row
    reason: str | None = None  # why the file was quarantined
    amount: str | None = None  # sum(amount) of the loaded transactions
    first: str | None = None  # min(occurred_at), UTC
    last: str | None = None  # max(occurred_at), UTC
    cancellations: int | None = 0  # None: not checked here (see the xfail test that checks it)
    rows: tuple[tuple[int, dict], ...] = ()
    mapping: str | None = None  # column_mappings.toml for this case
    id: str | None = None
    bug: str | None = None  # a known bug: the case is xfail(strict) until it is fixed

    @property
    def unreadable(self) -> bool:
        """Quarantined by raw_uploads (type, columns, parse); otherwise transactions decided (the reject share)."""
        return self.status == "quarantined" and self.read == 0


CASES = [
    # --- header shapes from real exports -------------------------------------------------------------------------
    Case(
        "uci_online_retail.csv", "loaded", read=16, loaded=15, duplicates=1,
        amount="192.51", first="2010-12-01 08:26:00", last="2010-12-03 16:50:00", cancellations=2,
        rows=(
            row(2, order_id="536365", occurred_at="2010-12-01 08:26:00", day="2010-12-01", customer_id="17850",
                region="United Kingdom", product="85123A", quantity="6", unit_price="2.55", amount="15.30"),
            row(7, product="21754", quantity="8", amount="30.00"),  # quoted "GLASS STORAGE JAR, 5"" KILNER"
            row(9, order_id="536370", amount="90.00"),  # line 8 repeated: the last copy is the one kept
            row(10, order_id="C536379", is_cancellation=True, quantity="-1", unit_price="27.5", amount="-27.5"),
            row(11, order_id="536381", is_cancellation=False, quantity="-3", amount="-14.85"),  # a return
            row(13, customer_id=None, quantity="56", amount="0"),
        ),
    ),
    Case(
        "superstore_orders.csv", "loaded", read=11, loaded=11,
        amount="3176.2175", first="2014-06-09 00:00:00", last="2017-03-14 00:00:00",  # order dates, not ship dates
        cancellations=None,  # "CA-..." order ids: see test_superstore_orders_are_not_cancellations
        rows=(
            row(2, transaction_id="1", order_id="CA-2016-152156", occurred_at="2016-11-08 00:00:00",
                customer_id="CG-12520", region="South", product="FUR-BO-10001798", quantity="2",
                unit_price="130.98", amount="261.96"),
            row(5, transaction_id="4", quantity="5", unit_price="191.5155", amount="957.5775"),
            row(12, transaction_id="11", occurred_at="2017-03-14 00:00:00", unit_price="15.176", amount="91.056"),
        ),
    ),
    Case(
        "shopify_orders_export.csv", "quarantined",
        reason=(
            "cannot find required column(s) quantity, unit_price: the file has columns 'Name', 'Email', "
            "'Financial Status', 'Created at', 'Lineitem quantity', 'Lineitem name', 'Lineitem price', "
            f"'Lineitem sku', 'Billing Country', 'Currency'; {NEEDS}"
        ),
    ),
    Case(
        "shopify_orders_export.csv", "loaded", read=5, loaded=5, id="shopify_orders_export.csv-with-mapping",
        mapping="""
[[files]]
pattern = "shopify_*.csv"
columns = { order_id = "Name", customer_id = "Email", quantity = "Lineitem quantity", unit_price = "Lineitem price", product = "Lineitem sku", region = "Billing Country" }
""",
        amount="252.40", first="2024-03-05 13:23:11", last="2024-03-31 01:30:00",
        rows=(
            row(2, order_id="#1001", occurred_at="2024-03-05 13:23:11", customer_id="anna@example.com",
                region="DE", product="TEE-BLK-M", quantity="2", unit_price="25.00", amount="50.00", currency="EUR"),
            row(4, order_id="#1002", product="SOCK-3P", amount="37.50"),
            row(6, order_id="#1004", customer_id=None, occurred_at="2024-03-31 01:30:00", amount="100.00"),
        ),
    ),
    Case(
        "llm_api_billing.csv", "loaded", read=6, loaded=5, duplicates=1,
        amount="2.012277", first="2026-02-01 01:04:50", last="2026-02-02 23:59:59",
        rows=(
            row(6, customer_id="u_0173", company="Globex Analytics", region="ap-southeast", product="gpt-4o-mini",
                quantity="768087", amount="0.288033", occurred_at="2026-02-01 01:04:50"),
            row(4, company="Bauer, Klein & Partner", occurred_at="2026-02-01 08:30:00", amount="1.08"),
            row(5, quantity="0", unit_price=None, amount="0"),
        ),
    ),
    # --- formats, delimiters, encodings, line endings -------------------------------------------------------------
    Case(
        "excel_utf8_bom_crlf.csv", "loaded", read=4, loaded=4,
        amount="4889.00", first="2026-03-02 09:15:00", last="2026-03-05 08:00:00",
        rows=(
            row(2, order_id="INV-2026-0001", customer_id="Zoë Müller", product="Consulting, senior (day rate)",
                quantity="2", unit_price="1250.00", amount="2500.00", currency="USD"),
            row(3, occurred_at="2026-03-03 13:00:00", customer_id="Café Olé GmbH", product="Licence “Pro” annual",
                unit_price="1499.00", amount="1499.00"),
            row(4, occurred_at="2026-03-04 00:00:00", customer_id="Łódź Tools Sp. z o.o.",
                product='Support hours "premium"', unit_price="95.00", amount="1140.00"),
            row(5, unit_price="-250.00", amount="-250.00", is_cancellation=False),
        ),
    ),
    Case(
        "pos_export_cp1252_crlf.csv", "loaded", read=7, loaded=6, rejected=1,
        rejects=((8, "non-numeric unit price 'gratis'"),),
        amount="59.80", first="2026-01-15 08:05:00", last="2026-01-16 23:59:00",
        rows=(
            row(2, region="Zürich", product="Café crème", quantity="2", unit_price="4.50", amount="9.00",
                currency="EUR"),
            row(5, region="Wien", product="Sachertorte „Original“", amount="6.80"),
            row(6, region="Köln", product="Kölsch 0,2 l", quantity="10", amount="19.00"),
        ),
    ),
    Case(
        "warehouse_extract_pipe.csv", "loaded", read=6, loaded=5, duplicates=1,
        amount="4006.86", first="2026-01-05 00:00:00", last="2026-01-31 23:59:59",
        rows=(
            row(6, transaction_id="T-000101", order_id="SO-5501", product="WIDGET|LARGE", quantity="4",
                amount="79.96", occurred_at="2026-01-05 00:00:00", customer_id="C-77", is_cancellation=False),
            row(4, transaction_id="T-000103", product='CABLE "USB-C" 2m', occurred_at="2026-01-06 13:45:00",
                amount="34.90"),
            row(5, quantity="-2", amount="-10.00", occurred_at="2026-01-07 08:15:00"),
            row(7, unit_price="1299.00", amount="3897.00"),
        ),
    ),
    Case(
        "marketplace_orders.tsv", "loaded", read=4, loaded=4,
        amount="57.47", first="2026-04-01 09:05:00", last="2026-04-03 23:59:00",
        rows=(
            row(3, order_id="114-3941689-8772232", quantity="2", amount="18.98"),
            row(4, occurred_at="2026-04-02 13:05:00", region="amazon.de", unit_price="22.99", amount="22.99"),
            row(5, quantity="-1", amount="-9.49"),
        ),
    ),
    Case(
        "online_retail_2011_12.csv.gz", "loaded", read=10, loaded=9, rejected=1,
        rejects=((11, "malformed line: expected 8 fields, found 9"),),
        amount="320.80", first="2011-12-09 11:58:00", last="2011-12-09 12:50:00", cancellations=1,
        rows=(
            row(7, product="POST", amount="18"),
            row(8, order_id="C581569", is_cancellation=True, quantity="-5", amount="-6.25"),
        ),
    ),
    Case(
        "orders_tz_aware.parquet", "loaded", read=4, loaded=4,
        amount="111.48", first="2026-05-01 13:00:00", last="2026-05-03 16:00:00", cancellations=1,
        rows=(
            row(1, order_id="O-1", occurred_at="2026-05-01 13:00:00", customer_id="cus_1", region="US",
                product="TEE-1", quantity="2", unit_price="10.50", amount="21.00"),
            row(2, occurred_at="2026-05-02 01:30:00", day="2026-05-02", amount="99.99"),  # 21:30 in New York
            row(4, order_id="C-4", is_cancellation=True, amount="-10.50"),
        ),
    ),
    Case(
        "orders_naive.parquet", "loaded", read=5, loaded=3, rejected=2,
        rejects=((3, "missing timestamp"), (4, "missing amount: neither an amount nor a unit price")),
        amount="26.50", first="2010-12-01 08:26:00", last="2010-12-01 23:59:59.5",
        rows=(
            row(1, order_id="536365", occurred_at="2010-12-01 08:26:00", customer_id="17850", quantity="6",
                unit_price="2.55", amount="15.30"),
            row(5, customer_id=None, occurred_at="2010-12-01 23:59:59.5", day="2010-12-01", amount="0.1"),
        ),
    ),
    Case(
        "llm_usage_events.jsonl", "loaded", read=7, loaded=4, rejected=3,
        rejects=(
            (4, "malformed line: invalid JSON: Expecting ',' delimiter: line 2 column 1 (char 178)"),
            (5, "malformed line: invalid JSON: not a JSON object"),
            (8, "missing timestamp"),  # line 7 is blank: skipped, but counted
        ),
        amount="10.1325", first="2026-06-01 07:12:00", last="2026-06-02 00:00:00",
        rows=(
            row(2, occurred_at="2026-06-01 08:00:05.25", customer_id="u_0002", product="gpt-4o-mini",
                quantity="350000", amount="0.0525", currency="USD"),
            row(3, company="Müller & Söhne", occurred_at="2026-06-01 07:12:00"),
            row(6, quantity="2000000", amount="10"),
        ),
    ),
    Case(
        "shop_orders_webhook.ndjson", "loaded", read=9, loaded=5, rejected=3, duplicates=1,
        rejects=(
            (3, "malformed line: invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                "(char 1)"),
            (4, "malformed line: invalid JSON: not a JSON object"),
            (6, "missing order id"),
        ),
        amount="110.25", first="2026-07-04 14:00:00", last="2026-07-06 08:00:00",
        rows=(
            row(9, order_id="W-9001", occurred_at="2026-07-04 14:00:00", quantity="2", amount="39.00"),
            row(5, customer_id=None, quantity="3", unit_price="12.00", amount="36.00",
                occurred_at="2026-07-05 00:00:00"),
            row(7, occurred_at="2026-07-06 03:45:00", day="2026-07-06", amount="5.25"),
            row(8, quantity="1.5", amount="6.00"),
        ),
    ),
    Case("orders_2026_06.xlsx", "quarantined", reason=f"unsupported file type '.xlsx': {UNSUPPORTED}"),
    Case("legacy_pos_export.txt", "quarantined", reason=f"unsupported file type '.txt': {UNSUPPORTED}"),
    # --- values ---------------------------------------------------------------------------------------------------
    Case(
        "value_formats.csv", "loaded", read=11, loaded=11,
        amount="3586.56", first="2025-12-31 23:59:00", last="2026-02-14 08:00:00",
        rows=(
            row(2, occurred_at="2026-02-10 08:00:00", amount="10.00"),
            row(3, occurred_at="2026-02-10 02:30:00", amount="1234.56"),
            row(4, occurred_at="2026-02-10 08:00:00", amount="1234.56"),  # no zone: UTC
            row(5, occurred_at="2026-02-10 08:00:00.123456", amount="12.50"),
            row(6, occurred_at="2026-02-10 08:05:00", amount="99.95"),
            row(7, occurred_at="2025-12-31 23:59:00", day="2025-12-31", amount="7.99"),
            row(8, occurred_at="2026-02-11 00:00:00", amount="3.50"),
            row(9, occurred_at="2026-02-11 17:30:00", amount="3.50"),
            row(10, occurred_at="2026-02-12 13:00:00.5", amount="-15.00"),
            row(11, occurred_at="2026-02-13 16:30:00", amount="-5.00"),
            row(12, occurred_at="2026-02-14 08:00:00", amount="1000", currency="GBP"),
        ),
    ),
    # --- failures -------------------------------------------------------------------------------------------------
    Case(
        "retail_with_bad_rows.csv", "loaded", read=20, loaded=11, rejected=8, duplicates=1,
        rejects=(
            (4, "unparseable timestamp '2/30/2011 10:05'"),
            (5, "missing timestamp"),
            (6, "missing order id"),
            (7, "malformed line: expected 8 fields, found 9"),
            (8, "non-numeric quantity 'ten'"),
            (9, "non-numeric unit price 'N/A'"),
            (10, "missing quantity"),
            (11, "missing amount: neither an amount nor a unit price"),
        ),
        amount="205.50", first="2011-02-28 10:00:00", last="2011-03-01 09:30:00",
        rows=(row(13, order_id="545008", amount="14.85"),),
    ),
    Case(
        "billing_half_bad.csv", "loaded", read=6, loaded=3, rejected=3,  # exactly 50%: not more than allowed
        rejects=(
            (4, "non-numeric amount 'n/a'"),
            (5, "unparseable timestamp 'yesterday'"),
            (7, "non-numeric quantity '1.2k'"),
        ),
        amount="0.045", first="2026-03-01 00:00:00", last="2026-03-01 03:00:00",
    ),
    Case(
        "uk_shop_orders_ddmm.csv", "quarantined", read=10, rejected=6,  # day-first dates without a mapping
        rejects=(
            (4, "unparseable timestamp '13/01/2026 16:05'" + HINT),
            (5, "unparseable timestamp '17/01/2026 10:30'" + HINT),
            (6, "unparseable timestamp '21/01/2026 14:00'" + HINT),
            (7, "unparseable timestamp '28/01/2026 09:00'" + HINT),
            (9, "unparseable timestamp '14/02/2026 18:45'" + HINT),
            (10, "unparseable timestamp '25/02/2026 08:30'" + HINT),
        ),
        reason=(
            "6 of 10 rows (60%) could not be loaded, more than the allowed 50%; most common: "
            "unparseable timestamp '13/01/2026 16:05'" + HINT
        ),
    ),
    Case(
        "customer_list.csv", "quarantined",
        reason=(
            "cannot find required column(s) occurred_at, quantity, unit_price: the file has columns "
            f"'Customer ID', 'First Name', 'Last Name', 'Email', 'Country', 'Signup Source'; {NEEDS}"
        ),
    ),
    Case("header_only.csv", "loaded"),  # a day without sales: loaded, nothing in it
    Case(
        "empty_file.csv", "quarantined",
        reason="cannot find required column(s) occurred_at, quantity, unit_price: the file has columns (none); "
        + NEEDS,
    ),
    Case(
        "header_only_no_newline.csv", "loaded",
    ),
    Case(
        "orders_with_blank_line.csv", "loaded", read=4, loaded=3, rejected=1,
        rejects=((5, "non-numeric amount 'abc'"),),
        amount="70.00", first="2026-08-01 10:00:00", last="2026-08-02 10:00:00",
        rows=(row(6, order_id="B-4", amount="40.00"),),
    ),
    Case(
        "statement_duplicate_headers.csv", "quarantined",
        reason=(
            "duplicate column name(s) 'Amount', 'Currency': the file has columns 'Date', 'Description', 'Amount', "
            "'Currency', 'Amount', 'Currency'"
        ),
    ),
    # --- the mapping file -----------------------------------------------------------------------------------------
    Case(
        "erp_export_2026.csv", "loaded", read=6, loaded=6, mapping=ERP_MAPPING,
        amount="2347.87", first="2026-01-02 07:30:00", last="2026-12-31 22:59:00", cancellations=1,
        rows=(
            row(2, order_id="RE-2026-0001", occurred_at="2026-01-02 07:30:00", customer_id="K-1001",
                region="Deutschland", product="A-100", quantity="10", unit_price="12.50", amount="125.00",
                currency="EUR", is_cancellation=False),
            row(3, occurred_at="2026-01-15 22:30:00", day="2026-01-15", region="Österreich", unit_price="1249.00",
                amount="2498.00"),
            # Berlin midnight (CEST): the business date is the file's, 3 April, not the UTC one.
            row(4, occurred_at="2026-04-02 22:00:00", day="2026-04-03", amount="899.90"),
            row(5, occurred_at="2026-06-29 22:15:00", day="2026-06-30", amount="50.00"),  # 00:15 in Berlin
            row(6, order_id="ST-2026-0001", occurred_at="2026-07-01 07:00:00", quantity="-1", amount="-1249.00",
                is_cancellation=True),
            row(7, occurred_at="2026-12-31 22:59:00", day="2026-12-31", amount="23.97"),
        ),
    ),
    Case(
        "erp_export_2026.csv", "quarantined", id="erp_export_2026.csv-mapping-names-a-missing-column",
        mapping="""
[[files]]
pattern = "erp_export_*.csv"
day_first = true
columns = { order_id = "Belegnummer", occurred_at = "Buchungsdatum", amount = "Gesamtbetrag" }
""",
        reason=f"the column mapping names 'Buchungsdatum' for occurred_at, but the source has columns {ERP_COLUMNS}",
    ),
    Case(
        "erp_export_2026.csv", "quarantined", id="erp_export_2026.csv-mapping-names-an-unknown-field",
        mapping="""
[[files]]
pattern = "erp_export_*.csv"
columns = { booking_date = "Belegdatum" }
""",
        reason="unknown canonical field 'booking_date' in the column mapping",
    ),
    Case(
        "uk_shop_orders_ddmm.csv", "loaded", read=10, loaded=10, id="uk_shop_orders_ddmm.csv-day-first",
        mapping="""
[[files]]
pattern = "uk_shop_orders_*.csv"
day_first = true
""",
        amount="163.00", first="2026-01-02 09:15:00", last="2026-02-25 08:30:00",
        rows=(row(11, occurred_at="2026-02-10 13:20:00", quantity="3", amount="19.50"),),
    ),
]

VERSION_FILES = [
    "versions/daily_orders_v1.csv",
    "versions/daily_orders_v2.csv",
    "versions/daily_orders_v3_mostly_bad.csv",
]
NOT_DATA = {"make_binary_cases.py", ".gitattributes"}
NUMERIC = {"quantity", "unit_price", "amount"}
ACCEPTANCE = {ACCEPTED_CHECK, ACCEPTED_ROWS_CHECK}


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id or case.file, marks=marks)


def _utc(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


def _expected(field_name: str, value):
    if value is None or isinstance(value, bool):
        return value
    if field_name == "occurred_at":
        return _utc(value)
    if field_name == "day":
        return date.fromisoformat(value)
    return Decimal(value) if field_name in NUMERIC else value


def _one(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).mappings().one_or_none()


def _all(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]


def _reported(instance: dg.DagsterInstance, asset: str):
    """The materialisation metadata and the acceptance check (file_accepted, rows_accepted) the latest run reported
    for ``asset``; its other checks (days_within_analysed_months) are tested elsewhere."""
    [run] = instance.get_runs(limit=1)
    metadata, check = None, None
    for entry in instance.all_logs(run.run_id):
        if entry.asset_materialization and entry.asset_materialization.asset_key == dg.AssetKey(asset):
            metadata = {k: v.value for k, v in entry.asset_materialization.metadata.items()}
        evaluation = entry.asset_check_evaluation
        if evaluation and evaluation.asset_key == dg.AssetKey(asset) and evaluation.check_name in ACCEPTANCE:
            check = evaluation
    return metadata, check


@pytest.fixture
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point ANALYTICS_COLUMN_MAPPINGS at this case's mapping file, or at none."""

    def use(text: str | None) -> None:
        if text is None:
            monkeypatch.delenv(MAPPINGS_ENV, raising=False)  # the session's data dir holds no mapping file
            return
        path = tmp_path / "column_mappings.toml"
        path.write_text(text)
        monkeypatch.setenv(MAPPINGS_ENV, str(path))

    return use


@pytest.fixture(params=["staged as text", "typed on the way"])
def load_path(request, monkeypatch):
    """Each case both ways: staged as text and typed in SQL (small files), and typed on the way in with the rest left
    to SQL (big files; here every file counts as big). The same rows and reasons are expected of both."""
    if request.param == "typed on the way":
        monkeypatch.setenv(canonical.BULK_BYTES_ENV, "0")
    return request.param


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_file(case: Case, instance, folders, engine, mappings, load_path):
    mappings(case.mapping)
    name = Path(case.file).name
    original = (CORPUS / case.file).read_bytes()
    upload = folders.uploads_path / name
    upload.write_bytes(original)

    [key] = load_uploads(instance, folders, [upload])
    # Whatever the file held, its books balance: lines read = staged = loaded + rejected + duplicates, recounted.
    [run] = instance.get_runs(limit=1)
    books = [e.asset_check_evaluation for e in instance.all_logs(run.run_id)
             if e.asset_check_evaluation and e.asset_check_evaluation.check_name == BOOKS_CHECK]
    assert [b.passed for b in books] == [True], [b.description for b in books]

    # The registry. A file quarantined when read never reaches row typing: it has no row counts.
    registry = dict(
        _one(
            engine,
            "SELECT status, rows_read, rows_loaded, rows_rejected, duplicate_rows, reason, path "
            "FROM analytics.ingested_files WHERE file_key = :key",
            key=key,
        )
    )
    path = registry.pop("path")
    counts = (None, None, None) if case.unreadable else (case.loaded, case.rejected, case.duplicates)
    assert registry == {
        "status": case.status,
        "rows_read": case.read,
        "rows_loaded": counts[0],
        "rows_rejected": counts[1],
        "duplicate_rows": counts[2],
        "reason": case.reason,
    }

    # Where the file ended: archive/<key>/ or quarantine/<key>/ (with the reason beside it), byte for byte.
    quarantined = case.status == "quarantined"
    home = (folders.quarantine_path if quarantined else folders.archive_path) / key
    other = (folders.archive_path if quarantined else folders.quarantine_path) / key
    assert list(folders.uploads_path.iterdir()) == []
    assert sorted(p.name for p in home.iterdir()) == sorted([name] + ([f"{name}.reason.txt"] if quarantined else []))
    assert (home / name).read_bytes() == original
    assert path == str(home / name)
    assert not other.exists() or list(other.iterdir()) == []
    if quarantined:
        assert (home / f"{name}.reason.txt").read_text() == case.reason + "\n"

    # Every line staged: as text, or (a big file's plain lines) typed on the way in; every rejected line with its
    # reason.
    typed_on_the_way = (_reported(instance, "transactions")[0] or {}).get("rows_typed_on_the_way", 0)
    staged = _all(engine, "SELECT count(*) FROM analytics.raw_uploads WHERE file_key = :key", key=key)
    assert staged == [(case.read - typed_on_the_way,)]
    rejected = _all(
        engine, "SELECT file_key, line_number, reason FROM analytics.rejected_rows ORDER BY line_number, reason"
    )
    assert rejected == [(key, line, reason) for line, reason in case.rejects]

    # The loaded values; each row's day is its date in the file's time zone (UTC unless the mapping names one).
    zone = re.search(r'^timezone = "([^"]+)"', case.mapping or "", flags=re.M)
    totals = _one(
        engine,
        "SELECT count(*) AS n, count(*) FILTER (WHERE source <> :key) AS elsewhere, sum(amount) AS amount, "
        "min(occurred_at) AS first, max(occurred_at) AS last, count(*) FILTER (WHERE is_cancellation) AS cancelled, "
        "count(*) FILTER (WHERE day <> (occurred_at AT TIME ZONE :zone)::date) AS wrong_day "
        "FROM analytics.transactions",
        key=key,
        zone=zone[1] if zone else "UTC",
    )
    expected_totals = {
        "n": case.loaded,
        "elsewhere": 0,
        "amount": Decimal(case.amount) if case.amount else None,
        "first": _utc(case.first),
        "last": _utc(case.last),
        "cancelled": case.cancellations,
        "wrong_day": 0,
    }
    if case.cancellations is None:
        del expected_totals["cancelled"]
    assert {k: totals[k] for k in expected_totals} == expected_totals
    for line, expected in case.rows:
        stored = _one(
            engine,
            "SELECT * FROM analytics.transactions WHERE source = :key AND source_line = :line",
            key=key,
            line=line,
        )
        assert stored is not None, f"no transaction from line {line}"
        assert {f: stored[f] for f in expected} == {f: _expected(f, v) for f, v in expected.items()}, f"line {line}"

    # What the assets reported: the quarantine reason is on the materialisation and on the failed check.
    staged_meta, accepted = _reported(instance, "raw_uploads")
    loaded_meta, rows_accepted = _reported(instance, "transactions")
    assert accepted.check_name == ACCEPTED_CHECK and rows_accepted.check_name == ACCEPTED_ROWS_CHECK
    if case.unreadable:
        assert (staged_meta["status"], staged_meta["reason"]) == ("quarantined", case.reason)
        assert (accepted.passed, accepted.severity, accepted.description) == (
            False, dg.AssetCheckSeverity.WARN, case.reason
        )
        assert (loaded_meta["status"], loaded_meta["dagster/row_count"]) == ("quarantined", 0)
        return
    assert (staged_meta["status"], staged_meta["dagster/row_count"], accepted.passed) == ("staged", case.read, True)
    assert {k: loaded_meta[k] for k in ("status", "dagster/row_count", "rows_rejected", "duplicate_rows")} == {
        "status": case.status,
        "dagster/row_count": case.loaded,
        "rows_rejected": case.rejected,
        "duplicate_rows": case.duplicates,
    }
    assert loaded_meta.get("reason") == case.reason
    assert (rows_accepted.passed, rows_accepted.description) == (not quarantined, case.reason)


def test_a_derived_unit_price_keeps_per_token_prices(instance, folders, engine, mappings):
    mappings(None)
    upload = folders.uploads_path / "llm_api_billing.csv"
    upload.write_bytes((CORPUS / "llm_api_billing.csv").read_bytes())
    load_uploads(instance, folders, [upload])
    rows = _all(
        engine,
        "SELECT source_line, quantity, unit_price, amount FROM analytics.transactions WHERE quantity <> 0 "
        "ORDER BY source_line",
    )
    assert [line for line, *_ in rows] == [3, 4, 6, 7]  # line 5 has no tokens, line 6 repeats line 2
    for line, quantity, unit_price, amount in rows:
        assert abs(quantity * unit_price - amount) < Decimal("0.000001"), (line, quantity, unit_price, amount)


def test_superstore_orders_are_not_cancellations(instance, folders, engine, mappings):
    mappings(None)
    upload = folders.uploads_path / "superstore_orders.csv"
    upload.write_bytes((CORPUS / "superstore_orders.csv").read_bytes())
    load_uploads(instance, folders, [upload])
    flagged = _all(engine, "SELECT order_id FROM analytics.transactions WHERE is_cancellation ORDER BY source_line")
    assert flagged == []


def test_a_changed_file_with_the_same_name_replaces_the_older_version(instance, folders, engine, mappings):
    mappings(None)
    v1, v2 = ((CORPUS / f).read_bytes() for f in VERSION_FILES[:2])
    upload = folders.uploads_path / "daily_orders.csv"

    upload.write_bytes(v1)
    [old] = load_uploads(instance, folders, [upload])
    assert _all(engine, "SELECT order_id, amount FROM analytics.transactions ORDER BY order_id") == [
        ("D-1", Decimal("100.00")), ("D-2", Decimal("200.00")), ("D-3", Decimal("300.00"))
    ]

    upload.write_bytes(v2)
    [new] = load_uploads(instance, folders, [upload])
    assert old != new

    def state():
        return (
            _all(engine, "SELECT file_key, status, reason FROM analytics.ingested_files ORDER BY received_at"),
            _all(engine, "SELECT order_id, amount, source FROM analytics.transactions ORDER BY order_id"),
        )

    only_v2 = [("D-1", Decimal("100.00"), new), ("D-2", Decimal("250.00"), new), ("D-4", Decimal("400.00"), new)]
    assert state() == (
        [(old, "replaced", f"replaced by a newer version ({new})"), (new, "loaded", None)],
        only_v2,
    )
    for key, content in ((old, v1), (new, v2)):  # both versions kept, each under its own key
        assert (folders.archive_path / key / "daily_orders.csv").read_bytes() == content
    assert list(folders.uploads_path.iterdir()) == []

    # Re-running the old version's partition (a retry, a backfill) does not bring its rows back.
    load_uploads(instance, folders, [folders.archive_path / old / "daily_orders.csv"])
    assert state() == (
        [(old, "replaced", f"replaced by a newer version of daily_orders.csv ({new})"), (new, "loaded", None)],
        only_v2,
    )
    metadata, check = _reported(instance, "transactions")
    assert (metadata["status"], metadata["dagster/row_count"], check.passed) == ("replaced", 0, True)
    assert (folders.archive_path / old / "daily_orders.csv").read_bytes() == v1


def test_a_quarantined_newer_version_does_not_replace_the_loaded_one(instance, folders, engine, mappings):
    mappings(None)
    upload = folders.uploads_path / "daily_orders.csv"
    upload.write_bytes((CORPUS / VERSION_FILES[0]).read_bytes())
    [old] = load_uploads(instance, folders, [upload])
    upload.write_bytes((CORPUS / VERSION_FILES[2]).read_bytes())
    [bad] = load_uploads(instance, folders, [upload])

    registry = _all(engine, "SELECT file_key, status, rows_rejected FROM analytics.ingested_files ORDER BY received_at")
    assert registry[1] == (bad, "quarantined", 2)  # 2 of 3 rows: "10/01/2026 25:00" and "tomorrow"
    assert registry[0] == (old, "loaded", 0)
    assert _all(engine, "SELECT order_id, amount, source FROM analytics.transactions ORDER BY order_id") == [
        ("D-1", Decimal("100.00"), old), ("D-2", Decimal("200.00"), old), ("D-3", Decimal("300.00"), old)
    ]


def test_every_corpus_file_is_a_case_and_the_corpus_stays_small():
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in NOT_DATA and "__pycache__" not in p.parts
    }
    assert on_disk == {c.file for c in CASES} | set(VERSION_FILES)
    assert sum((CORPUS / f).stat().st_size for f in on_disk) < 300_000
