"""Any history a user drops is analysed with nothing configured (issue 9): 1998-2001 and 2015-2016, each through
`analytics demo` and through `analytics dev` (upload sensor, touched-months refresh, no click).

Each set is four real-shaped files in four formats the loader reads, written here: CSV with its own header names,
gzipped CSV with another dialect, Parquet, JSON lines. The shop is closed on weekends or Sundays and on holidays (no
rows at all on those days), one day's refunds exceed its sales, one day has a planted spike, the last day is partial,
and every file carries a few bad rows and exact duplicate lines. The expected numbers come from reading those files
back with plain pandas and Decimal (nothing here imports the loader), which is first checked against what the
generator meant to write; the pipeline's tables must then equal them to the cent.

In the dev-stack path the 2015-2016 files arrive together and the 1998-2001 files in two waves, as a user's exports
do: the second wave's refresh covers only the months its files touched (2001), and the tables must still be those
the demo's single refresh leaves, quiet days at the waves' boundary (the weekend 2000-12-30/31) included.
"""

import gzip
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.assets.forecasting import HORIZON_DAYS
from analytics_pipeline_tests.stack import Stack, dev_stack, run_cli, stop_embedded, user_environment, wait_for

CENT = Decimal("0.01")
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


# ------------------------------------------------------------------------------------------------ the histories


@dataclass(frozen=True)
class Line:
    """One good transaction line as the generator means it; each file writes it in its own way."""

    line_id: str
    order_id: str
    at: datetime  # aware, UTC
    customer: str
    region: str
    product: str
    quantity: int
    price: Decimal
    amount: Decimal  # what the line adds to revenue


@dataclass(frozen=True)
class FilePlan:
    name: str
    first: date
    last: date
    wave: int  # dev-stack path: the files of wave 1 are dropped (and refreshed) before those of wave 2


@dataclass(frozen=True)
class History:
    name: str
    first: date
    last: date  # a partial day: only a few morning sales
    closed_weekdays: frozenset[int]
    holidays: frozenset[tuple[int, int]]
    regions: tuple[str, ...]
    spike_day: date  # one huge order
    negative_day: date  # refunds larger than the day's sales
    files: tuple[FilePlan, ...]
    seed: int
    orders_per_day: float

    def is_open(self, day: date) -> bool:
        return day.weekday() not in self.closed_weekdays and (day.month, day.day) not in self.holidays


SETS = {
    "1998-2001": History(
        name="1998-2001", first=date(1998, 1, 2), last=date(2001, 12, 28), closed_weekdays=frozenset({5, 6}),
        holidays=frozenset({(1, 1), (7, 4), (12, 25)}), regions=("North", "South", "East", "West"),
        spike_day=date(2000, 6, 14), negative_day=date(1999, 3, 10), seed=1998, orders_per_day=2.2,
        files=(
            FilePlan("pos_export_1998-1999.csv", date(1998, 1, 1), date(1999, 12, 31), wave=1),
            FilePlan("sales_2000.csv.gz", date(2000, 1, 1), date(2000, 12, 31), wave=1),
            FilePlan("orders_2001_h1.parquet", date(2001, 1, 1), date(2001, 6, 30), wave=2),
            FilePlan("webshop_2001_h2.jsonl", date(2001, 7, 1), date(2001, 12, 31), wave=2),
        ),
    ),
    "2015-2016": History(
        name="2015-2016", first=date(2015, 1, 2), last=date(2016, 11, 15), closed_weekdays=frozenset({6}),
        holidays=frozenset({(1, 1), (12, 25), (12, 26)}),
        regions=("United States", "Canada", "United Kingdom", "Germany"),
        spike_day=date(2016, 3, 9), negative_day=date(2015, 8, 19), seed=2015, orders_per_day=3.0,
        files=(
            FilePlan("Superstore Orders 2015.csv", date(2015, 1, 1), date(2015, 12, 31), wave=1),
            FilePlan("billing_2016-h1.csv.gz", date(2016, 1, 1), date(2016, 6, 30), wave=1),
            FilePlan("orders_2016_q3.parquet", date(2016, 7, 1), date(2016, 9, 30), wave=1),
            FilePlan("shop_orders_2016_q4.ndjson", date(2016, 10, 1), date(2016, 12, 31), wave=1),
        ),
    ),
}

PRODUCTS = [(f"SKU-{i:03d}", Decimal(p)) for i, p in enumerate(
    ["2.55", "4.95", "12.75", "1.69", "7.95", "19.90", "3.39", "49.90", "0.85", "9.99", "24.00", "5.49"]
)]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def generate(history: History) -> list[Line]:
    """The good lines of a history, in time order: orders of 1-3 lines on open days only."""
    rng = np.random.default_rng(history.seed)
    lines: list[Line] = []
    customers = [f"C{n:05d}" for n in rng.choice(np.arange(10000, 99999), 300, replace=False)]
    weekday_factor = (1.0, 1.1, 1.05, 1.2, 0.9, 0.6, 0.5)
    order_no = 0
    for day in _days(history.first, history.last):
        if not history.is_open(day):
            continue
        orders = 1 + rng.poisson(history.orders_per_day * weekday_factor[day.weekday()])
        opening, closing = (9 * 60, 10 * 60) if day == history.last else (9 * 60, 17 * 60)
        if day == history.last:
            orders = 2  # partial: the export was taken mid-morning
        minutes = np.sort(rng.integers(opening, closing, orders))
        for minute in minutes.tolist():
            order_no += 1
            at = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=UTC)
            customer = customers[int(rng.integers(len(customers)))]
            region = history.regions[int(rng.choice(len(history.regions), p=[0.4, 0.3, 0.2, 0.1]))]
            for product in rng.choice(len(PRODUCTS), int(rng.integers(1, 4)), replace=False).tolist():
                sku, price = PRODUCTS[product]
                quantity = int(rng.integers(1, 7))
                lines.append(Line(f"{history.seed}-{len(lines) + 1:06d}", f"{order_no:06d}", at, customer, region,
                                  sku, quantity, price, quantity * price))
        if day == history.spike_day:  # a trade customer's order: dozens of times a normal day
            order_no += 1
            at = datetime(day.year, day.month, day.day, 15, 30, tzinfo=UTC)
            lines.append(Line(f"{history.seed}-{len(lines) + 1:06d}", f"{order_no:06d}", at, customers[0],
                              history.regions[0], "SKU-007", 300, Decimal("49.90"), 300 * Decimal("49.90")))
        if day == history.negative_day:  # a recall: refunds larger than the day's sales
            order_no += 1
            at = datetime(day.year, day.month, day.day, 16, 45, tzinfo=UTC)
            lines.append(Line(f"{history.seed}-{len(lines) + 1:06d}", f"R{order_no:06d}", at, customers[1],
                              history.regions[1], "SKU-005", -120, Decimal("19.90"), -120 * Decimal("19.90")))
    return lines


# ------------------------------------------------------------------------------------------------- the writers
# Each writer puts its lines in the file the way a real export would, plus its bad rows (lines the loader must
# reject) and exact duplicate lines (counted once). Returns (bad rows, duplicate lines) written.


def _with_duplicates(rendered: list[str], every: int = 97) -> tuple[list[str], int]:
    out, dups = [], 0
    for i, line in enumerate(rendered):
        out.append(line)
        if i % every == every // 2:
            out.append(line)
            dups += 1
    return out, dups


def _us_time(at: datetime) -> str:
    return f"{at.month}/{at.day}/{at.year} {at.hour}:{at.minute:02d}"


def write_pos_export(path: Path, lines: list[Line]) -> tuple[int, int]:
    """Excel on Windows: BOM, CRLF, header names of its own, M/D/YYYY H:MM, a quoted description with a comma."""
    rendered = [
        f'{ln.line_id},{ln.order_id},{_us_time(ln.at)},{ln.customer},{ln.region},{ln.product},'
        f'"{ln.product} pack, assorted",{ln.quantity},{ln.price}'
        for ln in lines
    ]
    rendered, dups = _with_duplicates(rendered)
    bad = [
        'X-1,900001,not a date,C1,North,SKU-001,"x, y",1,2.55',
        'X-2,900002,2/30/1999 10:15,C1,North,SKU-001,"x, y",1,2.55',
        'X-3,900003,3/3/1999 10:15,C1,North,SKU-001,"x, y",1,abc',
        'X-4,900004,3/3/1999 11:15,C1,North,SKU-001,"x, y",n/a,2.55',
        "X-5,900005",  # a line cut short
    ]
    body = rendered[:100] + bad[:3] + rendered[100:1000] + bad[3:] + rendered[1000:]
    header = "Line ID,Invoice Number,Transaction Date,Client,Territory,Item Code,Item Description,Qty,Price Each"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(row + "\r\n" for row in [header, *body]).encode())
    return len(bad), dups


def write_semicolon_gz(path: Path, lines: list[Line]) -> tuple[int, int]:
    """A European till export, gzipped: semicolons, decimal commas, ISO timestamps without a zone, no line ids."""
    rendered = [
        f"SO-{ln.order_id};{ln.at:%Y-%m-%d %H:%M:%S};{ln.customer};{ln.region};{ln.product};{ln.quantity};"
        f"{str(ln.price).replace('.', ',')};EUR"
        for ln in lines
    ]
    rendered, dups = _with_duplicates(rendered)
    bad = [
        "SO-900010;2000-13-45 10:00:00;C1;North;SKU-001;1;2,55;EUR",
        "SO-900011;2000-03-03 10:00:00;C1;North;SKU-001;1;n/a;EUR",
        "SO-900012;2000-03-03 10:05:00;C1;North;SKU-001;zwei;2,55;EUR",
    ]
    body = rendered[:50] + bad + rendered[50:]
    header = "Order Number;Date;Customer;Country;SKU;Units;Unit Price;Currency"
    path.write_bytes(gzip.compress("".join(row + "\n" for row in [header, *body]).encode(), mtime=0))
    return len(bad), dups


def write_parquet_new_york(path: Path, lines: list[Line]) -> tuple[int, int]:
    """A data-team export: zone-aware New York timestamps, decimal prices, two nulls, two repeated rows."""
    rows = [(f"NY-{ln.order_id}", ln.at, ln.customer, ln.region, ln.product, ln.quantity, ln.price) for ln in lines]
    rows += [rows[10], rows[500]]  # exact duplicates
    bad = [("NY-900020", None, "C1", "North", "SKU-001", 1, Decimal("2.55")),
           ("NY-900021", lines[0].at, "C1", "North", "SKU-001", 1, None)]
    rows += bad
    columns = list(zip(*rows, strict=True))
    new_york = "America/New_York"
    stamps = [None if t is None else t.astimezone(timezone(timedelta(hours=-5))) for t in columns[1]]
    table = pa.table({
        "order_id": pa.array(columns[0]),
        "created_at": pa.array(stamps, pa.timestamp("us", tz=new_york)),
        "customer_id": pa.array(columns[2]),
        "region": pa.array(columns[3]),
        "sku": pa.array(columns[4]),
        "quantity": pa.array(columns[5], pa.int32()),
        "unit_price": pa.array(columns[6], pa.decimal128(10, 2)),
    })
    pq.write_table(table, path)
    return len(bad), 2


def write_webshop_jsonl(path: Path, lines: list[Line]) -> tuple[int, int]:
    """Webhook deliveries: ISO-8601 in UTC, the line total as a string or a number, a retried delivery, junk."""
    rendered = []
    for i, ln in enumerate(lines):
        total = str(ln.amount) if i % 2 else float(ln.amount)
        rendered.append(json.dumps({
            "txn_id": f"W-{ln.line_id}", "order_id": f"W-{ln.order_id}",
            "timestamp": ln.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer": ln.customer, "region": ln.region, "product": ln.product, "quantity": ln.quantity,
            "total": total,
        }))
    rendered, dups = _with_duplicates(rendered)
    bad = [
        '{"txn_id": "W-bad-1", "order_id": "W-900030", "timestamp": "2001-08-01T10:',  # a cut-off delivery
        json.dumps({"txn_id": "W-bad-2", "order_id": "W-900031", "timestamp": "yesterday", "total": "5.00"}),
        json.dumps({"txn_id": "W-bad-3", "order_id": "W-900032", "timestamp": "2001-08-01T10:00:00Z", "total": "n/a"}),
    ]
    body = rendered[:20] + bad + rendered[20:]
    path.write_text("".join(row + "\n" for row in body))
    return len(bad), dups


def write_superstore(path: Path, lines: list[Line]) -> tuple[int, int]:
    """A Superstore-style sheet: order and ship dates (date only), the line's sales with thousands separators."""
    def sales(amount: Decimal) -> str:
        text = f"{amount:,.2f}"
        return f'"{text}"' if "," in text else text

    rendered = [
        f"{ln.line_id},CA-{ln.at.year}-{ln.order_id},{ln.at.month}/{ln.at.day}/{ln.at.year},"
        f"{(ln.at + timedelta(days=4)).month}/{(ln.at + timedelta(days=4)).day}/{(ln.at + timedelta(days=4)).year},"
        f"Standard Class,{ln.customer},{ln.region},{ln.product},{ln.product} item,{sales(ln.amount)},{ln.quantity}"
        for ln in lines
    ]
    rendered, dups = _with_duplicates(rendered)
    bad = [
        "X-10,CA-2015-900040,13/45/2015,1/1/2016,Standard Class,C1,Canada,SKU-001,x,2.55,1",
        "X-11,CA-2015-900041,3/3/2015,3/7/2015,Standard Class,C1,Canada,SKU-001,x,#VALUE!,1",
        "X-12,CA-2015-900042,3/3/2015",
    ]
    body = rendered[:300] + bad + rendered[300:]
    header = "Row ID,Order ID,Order Date,Ship Date,Ship Mode,Customer ID,Region,Product ID,Product Name,Sales,Quantity"
    path.write_text("".join(row + "\n" for row in [header, *body]))
    return len(bad), dups


def write_pipe_gz(path: Path, lines: list[Line]) -> tuple[int, int]:
    """A billing system's extract, gzipped: pipes, +01:00 offsets, a rate and the line's amount."""
    rendered = []
    for ln in lines:
        local = ln.at.astimezone(timezone(timedelta(hours=1)))
        rendered.append(
            f"B-{ln.order_id}|{local.isoformat()}|{ln.customer}|{ln.region}|{ln.product}|{ln.quantity}|{ln.price}|"
            f"{ln.amount}"
        )
    rendered, dups = _with_duplicates(rendered)
    bad = [
        "B-900050|2016-02-30T10:00:00+01:00|C1|Canada|SKU-001|1|2.55|2.55",
        "B-900051|2016-03-01T10:00:00+01:00|C1|Canada|SKU-001|1|2.55|two fifty",
    ]
    body = rendered[:10] + bad + rendered[10:]
    header = "order_no|created_at|client_id|territory|item_code|qty|rate|amount"
    path.write_bytes(gzip.compress("".join(row + "\n" for row in [header, *body]).encode(), mtime=0))
    return len(bad), dups


def write_parquet_naive(path: Path, lines: list[Line]) -> tuple[int, int]:
    """pandas' to_parquet of a UCI-style frame: zone-less timestamps, float prices and customer ids."""
    frame = pd.DataFrame({
        "InvoiceNo": [ln.order_id for ln in lines],
        "InvoiceDate": [ln.at.replace(tzinfo=None) for ln in lines],
        "StockCode": [ln.product for ln in lines],
        "Quantity": [ln.quantity for ln in lines],
        "UnitPrice": [float(ln.price) for ln in lines],
        "CustomerID": [float(ln.customer[1:]) for ln in lines],
        "Country": [ln.region for ln in lines],
    })
    bad = pd.DataFrame({
        "InvoiceNo": ["900060", "900061"], "InvoiceDate": [pd.NaT, lines[0].at.replace(tzinfo=None)],
        "StockCode": ["SKU-001"] * 2, "Quantity": [1, 1], "UnitPrice": [2.55, np.nan], "CustomerID": [1.0, 1.0],
        "Country": ["Canada"] * 2,
    })
    frame = pd.concat([frame, frame.iloc[[7, 70]], bad], ignore_index=True)
    frame["InvoiceDate"] = frame["InvoiceDate"].astype("datetime64[ms]")
    frame.to_parquet(path, index=False)
    return len(bad), 2


def write_webhook_ndjson(path: Path, lines: list[Line]) -> tuple[int, int]:
    """Order webhooks: -04:00 offsets, "$12.00" prices, an order with no country, keep-alives, retries."""
    rendered = []
    for i, ln in enumerate(lines):
        record = {
            "txn_id": f"H-{ln.line_id}", "order_id": f"H-{ln.order_id}",
            "created_at": ln.at.astimezone(timezone(timedelta(hours=-4))).isoformat(), "customer_id": ln.customer,
            "country": ln.region, "sku": ln.product, "quantity": ln.quantity,
            "price": f"${ln.price}" if i % 3 else float(ln.price),
        }
        if i % 50 == 25:  # an app version that forgot the country
            del record["country"]
        rendered.append(json.dumps(record))
    rendered, dups = _with_duplicates(rendered)
    bad = ['"ping"', "{'order_id': 'H-900070', 'created_at': '2016-10-05T09:00:00Z', 'price': '10.00'}",
           json.dumps({"txn_id": "H-bad-1", "order_id": "H-900071", "created_at": "2016-10-05T09:00:00Z",
                       "quantity": 1, "price": "free"})]
    body = rendered[:5] + bad + rendered[5:]
    path.write_text("".join(row + "\n" for row in body))
    return len(bad), dups


WRITERS = {
    "pos_export_1998-1999.csv": write_pos_export,
    "sales_2000.csv.gz": write_semicolon_gz,
    "orders_2001_h1.parquet": write_parquet_new_york,
    "webshop_2001_h2.jsonl": write_webshop_jsonl,
    "Superstore Orders 2015.csv": write_superstore,
    "billing_2016-h1.csv.gz": write_pipe_gz,
    "orders_2016_q3.parquet": write_parquet_naive,
    "shop_orders_2016_q4.ndjson": write_webhook_ndjson,
}


# ---------------------------------------------------------------------------------------------------- the oracle
# Reads each file back with pandas/json and Decimal, knowing only its format: (day, region, amount) per good line.


def _decimal(text) -> Decimal | None:
    text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text).strip()
    return Decimal(text) if NUMBER.match(text) else None


def _csv_lines(path: Path, sep: str, date_column: str, date_format: str, region: str, amount) -> pd.DataFrame:
    raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig").drop_duplicates()
    raw = raw.fillna("")
    at = pd.to_datetime(raw[date_column], format=date_format, errors="coerce", utc=True)
    amounts = raw.apply(amount, axis=1)
    frame = pd.DataFrame({"at": at, "region": raw[region], "amount": amounts})
    return frame[frame["at"].notna() & frame["amount"].notna()]


def _product(quantity, price) -> Decimal | None:
    q, p = _decimal(quantity), _decimal(price)
    return None if q is None or p is None else q * p


def _json_lines(path: Path, time_key: str, amount) -> pd.DataFrame:
    records = []
    for line in dict.fromkeys(path.read_text().splitlines()):  # exact duplicate lines count once
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    frame = pd.DataFrame(records)
    at = pd.to_datetime(frame[time_key], format="ISO8601", errors="coerce", utc=True)
    amounts = frame.apply(amount, axis=1)
    region = frame["region" if "region" in frame else "country"]
    out = pd.DataFrame({"at": at, "region": region.where(region.notna(), None), "amount": amounts})
    return out[out["at"].notna() & out["amount"].notna()]


def read_back(path: Path) -> pd.DataFrame:
    name = path.name
    if name.startswith("pos_export"):
        frame = _csv_lines(path, ",", "Transaction Date", "%m/%d/%Y %H:%M", "Territory",
                           lambda r: _product(r["Qty"], r["Price Each"]))
    elif name.startswith("sales_"):
        frame = _csv_lines(path, ";", "Date", "%Y-%m-%d %H:%M:%S", "Country",
                           lambda r: _product(r["Units"], r["Unit Price"].replace(",", ".")))
    elif name.startswith("Superstore"):
        frame = _csv_lines(path, ",", "Order Date", "%m/%d/%Y", "Region",
                           lambda r: _decimal(r["Sales"].replace(",", "")))
    elif name.startswith("billing_"):
        frame = _csv_lines(path, "|", "created_at", "ISO8601", "territory", lambda r: _decimal(r["amount"]))
    elif name.endswith(".parquet"):
        raw = pd.read_parquet(path).drop_duplicates()
        time_column = "created_at" if "created_at" in raw else "InvoiceDate"
        region = "region" if "region" in raw else "Country"
        quantity, price = ("quantity", "unit_price") if "quantity" in raw else ("Quantity", "UnitPrice")
        at = raw[time_column]
        at = at.dt.tz_convert("UTC") if at.dt.tz is not None else at.dt.tz_localize("UTC")
        amounts = [_product(q, None if pd.isna(p) else repr(p) if isinstance(p, float) else p)
                   for q, p in zip(raw[quantity], raw[price], strict=True)]
        frame = pd.DataFrame({"at": at, "region": raw[region], "amount": amounts})
        frame = frame[frame["at"].notna() & frame["amount"].notna()]
    elif name.startswith("webshop"):
        frame = _json_lines(path, "timestamp", lambda r: _decimal(r["total"]))
    else:
        frame = _json_lines(path, "created_at", lambda r: _product(r.get("quantity"), str(r.get("price")).lstrip("$")))
    frame = frame.assign(day=frame["at"].dt.date, region=frame["region"].fillna("unknown"))
    return frame[["day", "region", "amount"]]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)  # as Postgres rounds numeric: half away from zero


@dataclass
class Expected:
    history: History
    folder: Path
    lines: int
    bad_rows: int
    duplicate_lines: int
    daily: dict[date, Decimal] = field(default_factory=dict)
    by_region: dict[tuple[date, str], Decimal] = field(default_factory=dict)

    def files(self, wave: int | None = None) -> list[Path]:
        return [self.folder / f.name for f in self.history.files if wave in (None, f.wave)]

    def span(self, wave: int) -> tuple[date, date]:
        """The first and last day with sales in the files of ``wave``."""
        plans = [f for f in self.history.files if f.wave == wave]
        days = [d for d in self.daily if any(p.first <= d <= p.last for p in plans)]
        return min(days), max(days)


def write_history(history: History, folder: Path) -> Expected:
    folder.mkdir(parents=True, exist_ok=True)
    lines = generate(history)
    bad = dups = 0
    for plan in history.files:
        part = [ln for ln in lines if plan.first <= ln.at.date() <= plan.last]
        b, d = WRITERS[plan.name](folder / plan.name, part)
        bad, dups = bad + b, dups + d
    read = pd.concat([read_back(folder / plan.name) for plan in history.files], ignore_index=True)
    expected = Expected(history, folder, len(read), bad, dups)
    for day, amounts in read.groupby("day")["amount"]:
        expected.daily[day] = _cents(sum(amounts, Decimal(0)))
    for (day, region), amounts in read.groupby(["day", "region"])["amount"]:
        expected.by_region[(day, region)] = _cents(sum(amounts, Decimal(0)))

    # The oracle reads back exactly what the generator meant: every good line, no bad one, each once.
    meant: dict[date, Decimal] = {}
    for ln in lines:
        meant[ln.at.date()] = meant.get(ln.at.date(), Decimal(0)) + ln.amount
    assert expected.lines == len(lines)
    assert expected.daily == {day: _cents(total) for day, total in meant.items()}
    assert {d for d in _days(history.first, history.last) if history.is_open(d)} == set(expected.daily)
    assert expected.daily[history.negative_day] < 0
    assert expected.daily[history.spike_day] > 10 * sorted(expected.daily.values())[len(expected.daily) // 2]
    return expected


@pytest.fixture(scope="module")
def histories(data_dir) -> dict[str, Expected]:
    return {name: write_history(history, data_dir / "history-files" / name) for name, history in SETS.items()}


# ------------------------------------------------------------------------------------------------ the assertions


def assert_analysed(rows, expected: Expected, refreshes: int) -> None:
    """The warehouse ``rows(sql)`` reads holds the whole history, right to the cent, and every analytics output of
    the last of ``refreshes`` refresh runs (insights keeps one narrative per run)."""
    history = expected.history
    daily = {day: (revenue, orders) for day, revenue, orders in rows(
        "SELECT day, revenue, orders FROM analytics.daily_metrics ORDER BY day"
    )}
    span = _days(history.first, history.last)
    missing = sorted(set(span) - set(daily))
    assert not missing, f"{len(missing)} days of {history.first}..{history.last} have no row, e.g. {missing[:5]}"
    assert sorted(daily) == span, f"rows outside the data's span: {sorted(set(daily) - set(span))[:5]}"
    wrong = [(day, daily[day][0], expected.daily.get(day, Decimal(0))) for day in span
             if daily[day][0] != expected.daily.get(day, Decimal("0.00"))]
    assert not wrong, f"{len(wrong)} days' revenue differ (day, table, files): {wrong[:5]}"
    closed = [day for day in span if not history.is_open(day)]
    assert closed and all(daily[day] == (0, 0) for day in closed)  # quiet days inside the span are zero rows
    assert daily[history.negative_day][0] < 0 and daily[history.last][0] > 0

    regions = {(day, region): revenue for day, region, revenue in rows(
        "SELECT day, region, revenue FROM analytics.daily_region_metrics"
    )}
    wrong = sorted(set(regions.items()) ^ set(expected.by_region.items()))
    assert not wrong, f"{len(wrong)} (day, region) revenues differ, e.g. {wrong[:5]}"

    assert rows("SELECT count(*) FROM analytics.transactions") == [(expected.lines,)]
    assert rows("SELECT count(*) FROM analytics.rejected_rows") == [(expected.bad_rows,)]
    assert rows(
        "SELECT count(*) FILTER (WHERE status = 'loaded'), sum(duplicate_rows) FROM analytics.ingested_files"
    ) == [(len(history.files), expected.duplicate_lines)]

    forecast = [day for (day,) in rows(
        "SELECT day FROM analytics.revenue_forecast WHERE segment = 'total' ORDER BY day"
    )]
    # The history ends in a partial day (its export stops in the morning): left out of the training, and the first
    # day forecast.
    assert forecast == _days(history.last, history.last + timedelta(days=HORIZON_DAYS - 1))
    spikes = rows(
        "SELECT metric FROM analytics.metric_anomalies WHERE day = :day AND segment = 'total' AND direction = 'spike'",
        {"day": history.spike_day},
    )
    assert ("revenue",) in spikes, rows("SELECT day, segment, metric, direction FROM analytics.metric_anomalies")
    negative = rows("SELECT reason FROM analytics.metric_anomalies WHERE day = :day AND segment = 'total' "
                    "AND metric = 'revenue'", {"day": history.negative_day})
    assert negative and "revenue negative: refunds or write-offs" in negative[0][0], negative
    assert rows("SELECT count(*) FROM analytics.insights") == [(refreshes,)]
    latest = rows(
        "SELECT facts->>'latest_day', facts->>'history_days', facts->'partial_day'->>'day' FROM analytics.insights "
        "ORDER BY insight_id DESC LIMIT 1"
    )
    assert latest == [((history.last - timedelta(days=1)).isoformat(), str(len(span) - 1), history.last.isoformat())]
    charts = [chart for (chart,) in rows("SELECT chart FROM analytics.charts")]
    assert "revenue_overview" in charts and len(charts) >= 1 + len(history.regions)


def _reader(db_url: str):
    def rows(sql: str, params: dict | None = None) -> list[tuple]:
        engine = sa.create_engine(urls.psycopg2_url(db_url))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params or {})]
        finally:
            engine.dispose()

    return rows


def _drop(files: list[Path], uploads: Path) -> None:
    """Copy files into the watched folder as a finished copy looks: an mtime in the past, so settled at once."""
    uploads.mkdir(parents=True, exist_ok=True)
    past = time.time() - 3600
    for path in files:
        target = Path(shutil.copy(path, uploads / path.name))
        os.utime(target, (past, past))


# ---------------------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", SETS)
def test_demo_analyses_any_history_with_nothing_configured(histories, data_dir, name):
    expected = histories[name]
    data = data_dir / f"history-demo-{name}"  # a fresh data directory: nothing configured, no samples
    _drop(expected.files(), data / "uploads")
    with user_environment(data) as env:
        try:
            demo = run_cli(["demo"], env)
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
            assert "copied" not in demo.stdout and "NOT ANALYSED" not in demo.stdout, demo.stdout
            dagster_warnings = ("BetaWarning", "PreviewWarning", "SupersessionWarning", "DeprecationWarning")
            assert not any(w in demo.stdout + demo.stderr for w in dagster_warnings), demo.stderr[-3000:]
            rows = _reader(run_cli(["db"], env).stdout.strip())
            # One refresh run over every month of the loaded span, as a single-run backfill.
            [(run_id,)] = rows("SELECT run_id FROM runs WHERE pipeline_name = 'daily_refresh_job'")
            tags = dict(rows("SELECT key, value FROM run_tags WHERE run_id = :id", {"id": run_id}))
            first, last = expected.history.first, expected.history.last
            assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
                f"{first:%Y-%m}",
                f"{last:%Y-%m}",
            )
            assert_analysed(rows, expected, refreshes=1)
        finally:
            stop_embedded(env)


def _months(first: date, last: date) -> set[str]:
    return {period.strftime("%Y-%m") for period in pd.period_range(first, last, freq="M")}


def _range(run: dict) -> tuple[str, str]:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    return tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]


def _wait_for_wave(stack: Stack, loads: int, dropped_at: float, months: set[str]) -> list[tuple[str, str]]:
    """Wait until ingest runs of ``loads`` files succeeded and the refresh runs launched since ``dropped_at`` cover
    ``months``, none left queued or running; returns their month ranges. Any failed run fails the test at once."""

    def settled():
        runs = stack.runs()
        failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        assert not failed, failed
        ingests = [r for r in runs if r["jobName"] == "ingest_upload_job"]
        refreshes = [
            r for r in runs
            if {"key": "dagster/sensor_name", "value": "touched_days_sensor"} in r["tags"]
            and r["creationTime"] >= dropped_at
        ]
        # Files dropped together share ingest runs: count the files the runs took, not the runs.
        files = sum(int({t["key"]: t["value"] for t in r["tags"]}.get("upload/files", 1)) for r in ingests)
        if files < loads or any(r["status"] != "SUCCESS" for r in ingests + refreshes):
            return None
        ranges = sorted(_range(r) for r in refreshes)
        return ranges if months <= set().union(*(_months(*r) for r in ranges)) else None

    return wait_for(settled, 420, f"{loads} loads and the refresh of {len(months)} months", interval=3)


@pytest.mark.parametrize("name", SETS)
def test_dev_stack_analyses_any_history_with_no_click(histories, data_dir, name):
    expected = histories[name]
    history = expected.history
    data = data_dir / f"history-dev-{name}"
    with user_environment(data) as env, dev_stack(data, env) as stack:
        loads = 0
        for wave in sorted({f.wave for f in history.files}):
            files = expected.files(wave)
            first_day, last_day = expected.span(wave)
            months = _months(first_day, last_day)
            dropped_at = time.time()
            _drop(files, stack.data / "uploads")
            loads += len(files)
            refreshes = _wait_for_wave(stack, loads, dropped_at, months)
            # Only the months this wave's files touched are refreshed: in one run, or a few if the sensor ticked
            # between the loads.
            assert all(min(months) <= lo <= hi <= max(months) for lo, hi in refreshes), refreshes
            assert stack.scalar("SELECT max(day) FROM analytics.daily_metrics") == last_day
        assert not list((stack.data / "uploads").iterdir())  # every file moved to the archive
        refreshes = [r for r in stack.runs() if r["jobName"] == "daily_refresh_job"]
        assert_analysed(stack.rows, expected, refreshes=len(refreshes))
