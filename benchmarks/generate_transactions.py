#!/usr/bin/env python3
"""Generate realistic transaction CSV files of any size, streamed to disk in chunks.

Why: the pipeline must be demonstrated, tested and benchmarked on data that looks like
what people actually feed it, at sizes from a few KB to many GB, without shipping real
customer data. The daily revenue series has a known structure (weekly seasonality,
trend, closures, planted anomalies), so forecasting and anomaly detection can be
checked against ground truth.

Three shapes (exact headers):

* ``retail``  - a UCI "Online Retail" style export:
  ``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country``.
  1-6 lines per invoice, 6-digit increasing invoice numbers (7 digits once a very
  large file runs past 999999), ~1% of invoices are cancellations ("C" prefix,
  negative Quantity), ~5% of invoices have no CustomerID, InvoiceDate is
  ``M/D/YYYY H:MM`` without zero padding. Shop hours 7:00-20:00.
* ``wholesale`` - the same columns as ``retail``, for a UK online wholesaler on a real
  business's calendar, as the actual UCI export is: no trading on Saturdays, closed on
  the bank holidays of England (the ``holidays`` library: Easter, May, August, special
  days such as a coronation), shut from Dec 24 to Jan 3, a yearly season (busiest in
  November, quiet in January and February), 1-12 lines per invoice, daily noise 10%.
  Every year it plants volume anomalies and bad-debt write-offs (WHOLESALE_ANOMALIES,
  WHOLESALE_WRITE_OFFS): a write-off is a one-line cancellation invoice whose negative
  quantity is worth twice the day's expected sales, so the day's net revenue is
  negative. The export was taken at noon on the last day: that day's lines stop before
  12:00 (other days run 7:00-19:00).
* ``billing`` - usage-based LLM API billing:
  ``user,company,region,model_name,token_count,cost,timestamp``.
  cost = token_count / 1000 * the model's price per 1k tokens (6 decimals),
  timestamp ``YYYY-MM-DDTHH:MM:SSZ``, around the clock with a business-hours bump.

Daily volume (and so daily revenue) = weekday factor x trend x noise x anomaly (x season
x level shift):

* weekly seasonality - retail: Mon-Fri strong, Saturday weak, Sunday moderate;
  billing: weekdays about twice the weekend;
* trend - +30% per year by default (``--yearly-growth``, e.g. 1.03 for a long, flatter
  history whose early years are not tiny), anchored at TREND_EPOCH (not at --start) so
  files covering adjacent periods continue each other;
* noise - log-normal, sigma 6% (wholesale 10%), drawn per calendar day from the seed,
  so the same day gets the same noise whichever file it lands in;
* closures - retail has no rows at all on Dec 25 and Jan 1; wholesale none on
  Saturdays, bank holidays and Dec 24 - Jan 3;
* anomalies (``anomalies=True``) - fixed dates, see ANOMALIES / ANOMALY_DATES:
  retail 2025-11-28 Black Friday x3.0, 2026-03-17 card-payment outage x0.15,
  2026-06-10 flash sale x2.5; billing 2025-09-16 runaway agent loop x4.0,
  2026-02-11 API outage x0.10, 2026-08-19 back-fill batch jobs x3.0; wholesale every
  year, on the first trading day on or after a date (so they hold for any years):
  Mar 12 trade-show orders x2.5, Jun 18 website outage x0.2, Sep 24 catalogue launch
  x2.2, Nov 8 courier strike x0.3; write-offs on or after Jan 27 and Jul 29;
* level shift (``--shift-day``, ``--shift-factor``) - volume steps by a factor from a
  day on (a big customer lost, a new sales channel); none by default.

``Summary`` returns the ground truth of a file: its closed days, anomaly dates and
write-off days.

Rows are spread over the days in proportion to that expected volume and written sorted
by time. ``--rows`` is the exact number of data lines in the file: ``dup_share`` of them
are exact repeats of the line just before (realistic double exports), and
``bad_share`` of them are broken in one of several realistic ways (unparseable or
impossible dates, non-numeric numbers, empty keys). Output is deterministic for a given
seed; a path ending in ``.gz`` is gzip-compressed.

Usage::

    python benchmarks/generate_transactions.py --shape retail --rows 5000000 --out /tmp/retail.csv.gz
    python benchmarks/generate_transactions.py --shape wholesale --rows 250000 --start 2024-01-01 \
        --end 2026-01-23 --shift-day 2025-09-01 --shift-factor 1.25 --out /tmp/wholesale.csv
"""

import argparse
import gzip
import io
from calendar import monthrange
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple, TextIO

import holidays
import numpy as np

CHUNK_ROWS = 100_000  # rows rendered at once; bounds memory whatever --rows is
TREND_EPOCH = date(2025, 5, 1)
YEARLY_GROWTH = 1.30
DAY_NOISE_SIGMA = 0.06
CATALOGUE_STREAM = 0  # seed stream for products/customers/companies, shared by all files
FIRST_INVOICE = 536365  # where the real UCI export starts


class Anomaly(NamedTuple):
    """A planted deviation: expected daily volume is multiplied by ``factor``."""

    factor: float
    description: str


ANOMALIES: dict[str, dict[date, Anomaly]] = {
    "retail": {
        date(2025, 11, 28): Anomaly(3.0, "Black Friday: ~3x normal order volume"),
        date(2026, 3, 17): Anomaly(0.15, "card-payment outage: ~15% of normal volume"),
        date(2026, 6, 10): Anomaly(2.5, "summer flash sale: ~2.5x normal volume"),
    },
    "billing": {
        date(2025, 9, 16): Anomaly(4.0, "runaway agent loop at a customer: ~4x normal usage"),
        date(2026, 2, 11): Anomaly(0.10, "API outage: ~10% of normal usage"),
        date(2026, 8, 19): Anomaly(3.0, "back-fill batch jobs after a model launch: ~3x normal usage"),
    },
}
ANOMALY_DATES: dict[date, str] = {
    day: f"{shape}: {anomaly.description}"
    for shape, by_day in ANOMALIES.items()
    for day, anomaly in by_day.items()
}
# The wholesaler's events recur every year, on the first trading day on or after (month, day), so a history of any
# years has them; `planted` resolves them to dates. A write-off is worth WRITE_OFF_SHARE times the day's sales.
WHOLESALE_ANOMALIES: dict[tuple[int, int], Anomaly] = {
    (3, 12): Anomaly(2.5, "trade-show orders: ~2.5x normal volume"),
    (6, 18): Anomaly(0.2, "website outage: ~20% of normal volume"),
    (9, 24): Anomaly(2.2, "autumn catalogue launch: ~2.2x normal volume"),
    (11, 8): Anomaly(0.3, "courier strike: ~30% of normal volume"),
}
WHOLESALE_WRITE_OFFS: tuple[tuple[int, int], ...] = ((1, 27), (7, 29))
WRITE_OFF_SHARE = 2.0


class LevelShift(NamedTuple):
    """Volume is multiplied by ``factor`` from ``day`` on: a big customer lost, a new sales channel."""

    day: date
    factor: float


class Planted(NamedTuple):
    """Ground truth of a span of days: the anomalies and the write-off days planted in it."""

    anomalies: dict[date, Anomaly]
    write_offs: list[date]


def csv_field(text: str) -> str:
    """Quote a CSV field the way spreadsheet exports do (only when needed)."""
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def weighted(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Draw indices with the given (unnormalised) weights."""
    return rng.choice(len(weights), size=size, p=weights / weights.sum())


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Popularity that decays with rank: a few best sellers / big customers, a long tail."""
    return np.arange(1, n + 1, dtype=float) ** -exponent


# --------------------------------------------------------------------------- retail

RETAIL_CLASSICS = [
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
    ("22423", "REGENCY CAKESTAND 3 TIER", 12.75),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
    ("21212", "PACK OF 72 RETROSPOT CAKE CASES", 0.55),
    ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN", 4.95),
    ("22722", "SET OF 6 SPICE TINS, PANTRY DESIGN", 3.95),
    ("48188", "DOORMAT, HOME SWEET HOME", 7.95),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", 2.95),
    ("21754", 'GLASS STORAGE JAR, 5" KILNER', 3.75),
    ("22457", "NATURAL SLATE HEART CHALKBOARD", 2.95),
]
RETAIL_ITEMS = [
    "LUNCH BAG", "JUMBO BAG", "CAKE CASES", "PAPER NAPKINS", "TEA TOWEL", "MUG",
    "CHILDRENS APRON", "PARTY BUNTING", "WATER BOTTLE", "NOTEBOOK", "GIFT WRAP",
    "CAKE TIN", "ALARM CLOCK", "PICNIC BASKET", "CUSHION COVER", "HOT WATER BOTTLE",
    "SHOPPING BAG", "PENCIL CASE", "SNACK BOX", "PLASTERS IN TIN",
]
RETAIL_PATTERNS = [
    "RED RETROSPOT", "VINTAGE PAISLEY", "PANTRY DESIGN", "WHITE HEART", "PINK POLKADOT",
    "BLUE SPOTTY", "SKULLS", "DOLLY GIRL", "SPACEBOY", "WOODLAND", "REGENCY",
    "JAM MAKING", "VINTAGE LEAF", "STRAWBERRY", "IVORY DINER", "VINTAGE DOILY",
]
RETAIL_PRODUCTS = 200
RETAIL_PRICES = np.array([0.42, 0.55, 0.65, 0.85, 1.25, 1.45, 1.65, 1.85, 2.10, 2.55,
                          2.95, 3.39, 3.75, 4.25, 4.95, 5.95, 7.95, 8.50, 9.95, 12.75])
RETAIL_COUNTRIES = {
    "United Kingdom": 0.86, "Germany": 0.03, "France": 0.025, "EIRE": 0.02, "Spain": 0.01,
    "Netherlands": 0.008, "Belgium": 0.007, "Switzerland": 0.006, "Portugal": 0.005,
    "Australia": 0.004,
}
RETAIL_CUSTOMERS = 4300
RETAIL_GUEST_SHARE = 0.05
RETAIL_CANCEL_SHARE = 0.01
RETAIL_MULTIPLIERS = np.array([1, 2])
RETAIL_MULTIPLIER_WEIGHTS = np.array([0.7, 0.3])
RETAIL_INVOICE_LINES = 6  # most lines on one invoice
WHOLESALE_INVOICE_LINES = 12  # trade customers order more products at once


def retail_products(rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray]:
    """~200 plausible products: a few real best sellers plus ITEM x PATTERN combinations."""
    combos = [f"{item} {pattern}" for item in RETAIL_ITEMS for pattern in RETAIL_PATTERNS]
    picked = rng.choice(len(combos), RETAIL_PRODUCTS - len(RETAIL_CLASSICS), replace=False)
    taken = {int(code[:5]) for code, _, _ in RETAIL_CLASSICS}
    numbers = [n for n in rng.choice(np.arange(20000, 90000), 400, replace=False) if n not in taken]
    suffixes = rng.choice(["", "", "", "A", "B", "C"], len(picked))
    codes = [code for code, _, _ in RETAIL_CLASSICS]
    codes += [f"{numbers[i]}{suffixes[i]}" for i in range(len(picked))]
    names = [name for _, name, _ in RETAIL_CLASSICS] + [combos[i] for i in picked]
    prices = np.concatenate([[price for _, _, price in RETAIL_CLASSICS],
                             rng.choice(RETAIL_PRICES, len(picked))])
    return codes, names, prices


def pack_sizes(prices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Typical quantity per line: cheap items are bought by the dozen, dear ones singly."""
    n = len(prices)
    packs = [rng.choice([12, 24], n), rng.choice([6, 12], n), rng.choice([2, 4], n)]
    return np.select([prices < 1, prices < 3, prices < 8], packs, default=1)


def invoice_starts(rng: np.random.Generator, day_idx: np.ndarray, most_lines: int) -> np.ndarray:
    """Mark lines that open a new invoice: every 1-``most_lines`` lines, and always at a new day."""
    n = len(day_idx)
    sizes = rng.integers(1, most_lines + 1, size=n)
    starts = np.cumsum(sizes) - sizes
    flags = np.zeros(n, dtype=bool)
    flags[starts[starts < n]] = True
    flags[1:] |= day_idx[1:] != day_idx[:-1]
    return flags


class RetailModel:
    """Catalogue and invoice numbering for the retail and wholesale shapes (state spans chunks)."""

    def __init__(self, rng: np.random.Generator, first_invoice: int, invoice_lines: int = RETAIL_INVOICE_LINES):
        codes, names, prices = retail_products(rng)
        self.codes = np.array(codes, dtype=object)
        self.names = np.array([csv_field(n) for n in names], dtype=object)
        self.prices = prices
        self.packs = pack_sizes(prices, rng)
        self.product_weights = zipf_weights(len(codes), 0.9)
        ids = rng.choice(np.arange(12346, 18288), RETAIL_CUSTOMERS, replace=False)
        self.customer_ids = np.array([str(i) for i in ids], dtype=object)
        self.country_names = np.array(list(RETAIL_COUNTRIES), dtype=object)
        self.country_weights = np.array(list(RETAIL_COUNTRIES.values()))
        self.customer_countries = self.country_names[weighted(rng, self.country_weights, RETAIL_CUSTOMERS)]
        self.customer_weights = zipf_weights(RETAIL_CUSTOMERS, 0.7)
        self.next_invoice = first_invoice
        self.invoice_lines = invoice_lines
        multiplier = (RETAIL_MULTIPLIERS * RETAIL_MULTIPLIER_WEIGHTS).sum() / RETAIL_MULTIPLIER_WEIGHTS.sum()
        weights = self.product_weights / self.product_weights.sum()
        self.mean_line_value = float((weights * self.prices * self.packs).sum() * multiplier)  # sizes write-offs

    def distinct_products(self, rng: np.random.Generator, invoice_of_line: np.ndarray) -> np.ndarray:
        """Popularity-weighted products, redrawn until no invoice lists a product twice.

        Repeated (invoice, product) pairs would often be identical lines, and the only
        exact duplicates in the file should be the planted ones.
        """
        product = weighted(rng, self.product_weights, len(invoice_of_line))
        while True:
            key = invoice_of_line * len(self.codes) + product
            order = np.argsort(key, kind="stable")
            repeated = order[1:][key[order][1:] == key[order][:-1]]
            if not len(repeated):
                return product
            product[repeated] = weighted(rng, self.product_weights, len(repeated))

    def columns(self, rng: np.random.Generator, lines: "Lines") -> list[np.ndarray]:
        """One chunk of lines, columns in header order; an invoice's lines share its time.

        A write-off line is an invoice of its own: a cancellation of one product whose negative quantity is worth
        ``lines.write_off`` average lines (a bad debt written off, like the UCI export's -80,995 paper birdies).
        """
        day_idx, stamps = lines.day_idx, lines.stamps
        write_off = lines.write_off > 0
        starts = invoice_starts(rng, day_idx, self.invoice_lines) | write_off
        invoice_of_line = np.cumsum(starts) - 1
        n_invoices = int(invoice_of_line[-1]) + 1
        numbers = np.arange(self.next_invoice, self.next_invoice + n_invoices)
        self.next_invoice += n_invoices
        cancelled = rng.random(n_invoices) < RETAIL_CANCEL_SHARE
        cancelled[invoice_of_line[write_off]] = True
        invoice_no = np.where(cancelled, "C", "").astype(object) + numbers.astype(str).astype(object)

        customer = weighted(rng, self.customer_weights, n_invoices)
        guest = rng.random(n_invoices) < RETAIL_GUEST_SHARE
        guest_country = self.country_names[weighted(rng, self.country_weights, n_invoices)]
        customer_id = np.where(guest, "", self.customer_ids[customer])
        country = np.where(guest, guest_country, self.customer_countries[customer])

        product = self.distinct_products(rng, invoice_of_line)
        multiplier = RETAIL_MULTIPLIERS[weighted(rng, RETAIL_MULTIPLIER_WEIGHTS, len(day_idx))]
        quantity = self.packs[product] * multiplier * np.where(cancelled[invoice_of_line], -1, 1)
        written_off = np.ceil(lines.write_off * self.mean_line_value / self.prices[product]).astype(np.int64)
        quantity = np.where(write_off, -written_off, quantity)
        return [invoice_no[invoice_of_line], self.codes[product], self.names[product], quantity,
                stamps[starts][invoice_of_line], self.prices[product],
                customer_id[invoice_of_line], country[invoice_of_line]]


# -------------------------------------------------------------------------- billing

BILLING_COMPANIES = [
    "Acme Robotics", "Globex Analytics", "Initech Labs", "Umbrella Health", "Stark Logistics",
    "Wayne Fintech", "Hooli Search", "Pied Piper", "Vandelay Imports", "Soylent Foods",
    "Tyrell Genomics", "Cyberdyne Systems", "Wonka Confectionery", "Aperture Science",
    "Black Mesa Research", "Oscorp Materials", "Gringotts Banking", "Monarch Insurance",
    "Bluebook Legal", "Northwind Traders", "Contoso Retail", "Fabrikam Media",
    "Tailspin Travel", "Litware Education", "Adventure Works", "Blue Yonder Airlines",
    "Coho Vineyard", "Lucerne Publishing", "Margie's Travel", "Proseware Security",
    "Wide World Importers", "Alpine Ski House", "Fourth Coffee", "Graphic Design Institute",
    "Humongous Insurance", "Nod Publishers", "Southridge Video", "Trey Research",
    "Bauer, Klein & Partner", "Zephyr Energy",
]
BILLING_REGIONS = {"us-east": 0.35, "us-west": 0.2, "eu-west": 0.2, "eu-central": 0.15, "ap-southeast": 0.1}
BILLING_HOME_REGION_SHARE = 0.85  # the rest of a company's traffic goes to any region
# A row is one metered usage record (a user's batch of requests to one model).
# name: (price per 1k tokens, share of records, median tokens per record). Cheap models
# get the big bulk jobs, which also keeps the per-row cost spread (and daily noise) mild.
BILLING_MODELS = {
    "gpt-4o": (0.00625, 0.25, 150_000),
    "gpt-4o-mini": (0.000375, 0.30, 1_200_000),
    "gpt-4.1": (0.005, 0.15, 180_000),
    "gpt-4.1-mini": (0.001, 0.15, 600_000),
    "gpt-4.1-nano": (0.00025, 0.05, 1_600_000),
    "o3-mini": (0.00275, 0.10, 300_000),
}
BILLING_USERS = 900
BILLING_TOKEN_SIGMA = 0.5


class BillingModel:
    """Companies, their users and home regions, and model prices for the billing shape."""

    def __init__(self, rng: np.random.Generator):
        self.companies = np.array([csv_field(c) for c in BILLING_COMPANIES], dtype=object)
        n_companies = len(BILLING_COMPANIES)
        self.company_weights = zipf_weights(n_companies, 1.0)[rng.permutation(n_companies)]
        share = self.company_weights / self.company_weights.sum()
        sizes = np.maximum(2, np.round(BILLING_USERS * share)).astype(int)
        self.user_start = np.cumsum(sizes) - sizes
        self.user_count = sizes
        self.users = np.array([f"u_{i:04d}" for i in range(1, sizes.sum() + 1)], dtype=object)
        self.region_names = np.array(list(BILLING_REGIONS), dtype=object)
        self.region_weights = np.array(list(BILLING_REGIONS.values()))
        self.home_region = weighted(rng, self.region_weights, len(BILLING_COMPANIES))
        self.model_names = np.array(list(BILLING_MODELS), dtype=object)
        prices, weights, tokens = zip(*BILLING_MODELS.values(), strict=True)
        self.model_prices, self.model_weights, self.model_tokens = map(np.array, (prices, weights, tokens))

    def columns(self, rng: np.random.Generator, lines: "Lines") -> list[np.ndarray]:
        """One chunk of usage records, columns in header order."""
        n = len(lines.day_idx)
        company = weighted(rng, self.company_weights, n)
        user = self.user_start[company] + (rng.random(n) * self.user_count[company]).astype(int)
        roaming = rng.random(n) >= BILLING_HOME_REGION_SHARE
        region = np.where(roaming, weighted(rng, self.region_weights, n), self.home_region[company])
        model = weighted(rng, self.model_weights, n)
        tokens = rng.lognormal(np.log(self.model_tokens[model]), BILLING_TOKEN_SIGMA)
        tokens = np.clip(tokens, 100, 50_000_000).astype(np.int64)
        cost = tokens * self.model_prices[model] / 1000
        return [self.users[user], self.companies[company], self.region_names[region],
                self.model_names[model], tokens, cost, lines.stamps]


# --------------------------------------------------------------------------- shapes

class Corruption(NamedTuple):
    """One realistic way a line goes bad: ``field`` (formatted text) is replaced."""

    label: str
    field: int
    make: Callable[[str], str]


@dataclass(frozen=True)
class Shape:
    """Everything that differs between the file shapes."""

    header: str
    field_formats: tuple[str, ...]
    stream: int  # seed stream, keeps the shapes' random draws independent
    weekday_factors: tuple[float, ...]  # Monday..Sunday; 0: closed that weekday
    closed: frozenset[tuple[int, int]]  # (month, day) with no rows at all
    open_hour: int
    hourly_weights: tuple[float, ...]  # from open_hour on
    units_per_hour: int  # 60: minute resolution, 3600: second resolution
    day_prefix: Callable[[date], str]
    time_text: Callable[[int], str]
    model: Callable[[np.random.Generator, int], RetailModel | BillingModel]  # (rng, first_invoice)
    corruptions: tuple[Corruption, ...]
    anomalies: dict[date, Anomaly]
    day_noise: float = DAY_NOISE_SIGMA  # sigma of the daily log-normal noise
    seasonality: tuple[float, ...] = ()  # volume factor per month (Jan..Dec, at mid-month; interpolated between)
    holiday_country: str | None = None  # "GB-ENG": no rows on that country's (region's) public holidays
    yearly_anomalies: dict[tuple[int, int], Anomaly] = field(default_factory=dict)  # by (month, day), see planted
    yearly_write_offs: tuple[tuple[int, int], ...] = ()  # (month, day), see planted
    last_day_until: int | None = None  # the export was taken at this hour of the last day: it stops there

    @property
    def template(self) -> str:
        """printf template for a whole line: one ``%`` pass per row is the fast path."""
        return ",".join(self.field_formats)


SHAPES: dict[str, Shape] = {
    "retail": Shape(
        header="InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        field_formats=("%s", "%s", "%s", "%d", "%s", "%.2f", "%s", "%s"),
        stream=1,
        weekday_factors=(1.0, 1.1, 1.05, 1.2, 0.85, 0.25, 0.6),
        closed=frozenset({(12, 25), (1, 1)}),
        open_hour=7,
        hourly_weights=(0.5, 2, 5, 7, 8, 9, 8, 7, 6, 4, 2, 1, 0.5),
        units_per_hour=60,
        day_prefix=lambda d: f"{d.month}/{d.day}/{d.year} ",
        time_text=lambda minute: f"{minute // 60}:{minute % 60:02d}",
        model=RetailModel,
        corruptions=(
            Corruption("unparseable InvoiceDate", 4, lambda s: "not a date"),
            Corruption("impossible InvoiceDate", 4, lambda s: "31/31/" + s.split("/", 2)[2]),
            Corruption("empty InvoiceDate", 4, lambda s: ""),
            Corruption("non-numeric UnitPrice", 5, lambda s: "abc"),
            Corruption("empty InvoiceNo", 0, lambda s: ""),
        ),
        anomalies=ANOMALIES["retail"],
    ),
    "billing": Shape(
        header="user,company,region,model_name,token_count,cost,timestamp",
        field_formats=("%s", "%s", "%s", "%s", "%d", "%.6f", "%s"),
        stream=2,
        weekday_factors=(1.0, 1.02, 1.03, 1.0, 0.95, 0.5, 0.47),
        closed=frozenset(),
        open_hour=0,
        hourly_weights=(2, 1.5, 1.5, 1.5, 2, 2.5, 3, 4, 5, 6, 6.5, 7,  # UTC: EU morning,
                        7.5, 8, 8, 8, 7.5, 7, 6, 5, 4, 3.5, 3, 2.5),  # then US business hours
        units_per_hour=3600,
        day_prefix=lambda d: f"{d.isoformat()}T",
        time_text=lambda second: f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
        model=lambda rng, first_invoice: BillingModel(rng),  # billing has no invoices
        corruptions=(
            Corruption("unparseable timestamp", 6, lambda s: "not a date"),
            Corruption("impossible timestamp", 6, lambda s: s[:5] + "31-31" + s[10:]),
            Corruption("empty timestamp", 6, lambda s: ""),
            Corruption("non-numeric cost", 5, lambda s: "abc"),
            Corruption("non-numeric token_count", 4, lambda s: "n/a"),
        ),
        anomalies=ANOMALIES["billing"],
    ),
}
SHAPES["wholesale"] = replace(
    SHAPES["retail"],
    stream=3,
    weekday_factors=(1.0, 1.1, 1.05, 1.2, 0.85, 0.0, 0.6),
    closed=frozenset({(12, day) for day in range(24, 32)} | {(1, day) for day in range(1, 4)}),
    hourly_weights=(1, 3, 6, 8, 9, 9, 8, 7, 5, 3, 1.5, 0.5),  # 7:00-19:00
    model=lambda rng, first_invoice: RetailModel(rng, first_invoice, WHOLESALE_INVOICE_LINES),
    anomalies={},
    day_noise=0.10,
    seasonality=(0.78, 0.82, 0.95, 0.93, 1.0, 0.97, 0.95, 1.0, 1.12, 1.25, 1.4, 1.1),
    holiday_country="GB-ENG",
    yearly_anomalies=WHOLESALE_ANOMALIES,
    yearly_write_offs=WHOLESALE_WRITE_OFFS,
    last_day_until=12,
)


# ----------------------------------------------------------------- daily structure

class Closures:
    """Whether the shape trades on a day: a pure function of the date, so that a file's events and closures do not
    depend on where it starts or ends."""

    def __init__(self, shape: Shape, years: range):
        self.shape = shape
        country, _, region = (shape.holiday_country or "").partition("-")
        self.holidays = holidays.country_holidays(country, subdiv=region or None, years=years) if country else {}

    def closed(self, day: date) -> bool:
        return ((day.month, day.day) in self.shape.closed or self.shape.weekday_factors[day.weekday()] == 0
                or day in self.holidays)

    def next_trading_day(self, day: date, taken: set[date]) -> date:
        while self.closed(day) or day in taken:
            day += timedelta(days=1)
        return day


def planted(shape: Shape, days: Sequence[date], anomalies: bool = True) -> Planted:
    """The anomalies and write-offs in ``days``: the shape's fixed anomaly dates, then its yearly events, each on
    the first trading day on or after its (month, day) that holds no other event (anomalies first, in
    (month, day) order, then write-offs). ``anomalies=False`` plants none of either."""
    if not anomalies:
        return Planted({}, [])
    first, last = days[0], days[-1]
    closures = Closures(shape, range(first.year, last.year + 2))
    found = {day: shape.anomalies[day] for day in days if day in shape.anomalies}
    taken: set[date] = set(found)
    for year in range(first.year, last.year + 1):
        for (month, day), anomaly in sorted(shape.yearly_anomalies.items()):
            resolved = closures.next_trading_day(date(year, month, day), taken)
            taken.add(resolved)
            found[resolved] = anomaly
    write_offs = []
    for year in range(first.year, last.year + 1):
        for month, day in shape.yearly_write_offs:
            resolved = closures.next_trading_day(date(year, month, day), taken)
            taken.add(resolved)
            write_offs.append(resolved)
    return Planted({d: a for d, a in sorted(found.items()) if first <= d <= last},
                   sorted(d for d in write_offs if first <= d <= last))


def seasonal(shape: Shape, day: date) -> float:
    """The shape's factor for the day's month, interpolated between mid-months so the season has no steps."""
    if not shape.seasonality:
        return 1.0
    months = np.asarray(shape.seasonality, dtype=float)
    position = day.month - 1 + (day.day - 0.5) / monthrange(day.year, day.month)[1] - 0.5  # 0 = mid-January
    return float(np.interp(position, np.arange(-1, 13), np.r_[months[-1], months, months[0]]))


def daily_volume(shape: Shape, days: Sequence[date], seed: int, anomalies: bool,
                 yearly_growth: float = YEARLY_GROWTH, level_shift: LevelShift | None = None) -> np.ndarray:
    """Expected relative volume per day: weekday x trend x noise x anomaly x season x level shift, 0 when closed."""
    volume = np.empty(len(days))
    closures = Closures(shape, range(days[0].year, days[-1].year + 1))
    events = planted(shape, days, anomalies).anomalies
    for i, day in enumerate(days):
        if closures.closed(day):
            volume[i] = 0.0
            continue
        trend = yearly_growth ** ((day - TREND_EPOCH).days / 365.25)
        noise = np.random.default_rng([seed, shape.stream, day.toordinal()]).lognormal(0.0, shape.day_noise)
        anomaly = events[day].factor if day in events else 1.0
        shift = level_shift.factor if level_shift and day >= level_shift.day else 1.0
        volume[i] = shape.weekday_factors[day.weekday()] * trend * noise * anomaly * seasonal(shape, day) * shift
    return volume


def share_before(shape: Shape, hour: int) -> float:
    """Share of a day's lines written before ``hour`` (by the hourly weights)."""
    weights = np.asarray(shape.hourly_weights, dtype=float)
    return float(weights[: max(0, hour - shape.open_hour)].sum() / weights.sum())


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` rows over days in proportion to ``weights``, summing exactly."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(counts - exact, kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def share_of_range(total: int, start: int, stop: int, size: int) -> int:
    """How many of ``total`` events fall in rows [start, stop) of ``size`` (telescopes exactly)."""
    return round(total * stop / size) - round(total * start / size)


class Lines(NamedTuple):
    """Rows of a chunk as the calendar lays them out, for a model to fill in."""

    day_idx: np.ndarray  # index of the row's day
    stamps: np.ndarray  # timestamp text
    write_off: np.ndarray  # the row is a write-off worth this many average lines; 0 for an ordinary row


@dataclass
class Calendar:
    """Per-day row counts plus the text pieces that make up each row's timestamp."""

    shape: Shape
    days: list[date]
    rows_per_day: np.ndarray
    day_share: np.ndarray  # share of the day's trading hours in the file: 1.0 but on a partial last day
    write_off: np.ndarray  # per day, the write-off on its last row, in average lines (0: none)
    day_end: np.ndarray = field(init=False)
    prefixes: np.ndarray = field(init=False)
    times: np.ndarray = field(init=False)
    cdf: np.ndarray = field(init=False)
    grid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.day_end = np.cumsum(self.rows_per_day)
        self.prefixes = np.array([self.shape.day_prefix(d) for d in self.days], dtype=object)
        units_per_day = 24 * self.shape.units_per_hour
        self.times = np.array([self.shape.time_text(t) for t in range(units_per_day)], dtype=object)
        weights = np.asarray(self.shape.hourly_weights, dtype=float)
        self.cdf = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        self.grid = (self.shape.open_hour + np.arange(len(weights) + 1)) * self.shape.units_per_hour

    def lines(self, rng: np.random.Generator, start: int, stop: int) -> Lines:
        """Day index, timestamp text (non-decreasing in time) and write-off of rows [start, stop).

        The j-th of a day's k rows gets the intraday quantile (j + U) / k (stratified
        sampling), so times are sorted without sorting and independent of chunking; on a
        partial day the quantiles shrink into its share of the hours. A day's write-off is
        its last row.
        """
        rows = np.arange(start, stop)
        day_idx = np.searchsorted(self.day_end, rows, side="right")
        per_day = self.rows_per_day[day_idx]
        rank = rows - (self.day_end[day_idx] - per_day)
        quantile = (rank + rng.random(len(rows))) / per_day * self.day_share[day_idx]
        unit = np.interp(quantile, self.cdf, self.grid).astype(np.int64)
        write_off = np.where(rank == per_day - 1, self.write_off[day_idx], 0.0)
        return Lines(day_idx, self.prefixes[day_idx] + self.times[unit], write_off)


# ----------------------------------------------------------------------- rendering

def render_chunk(shape: Shape, columns: list[np.ndarray], rng: np.random.Generator,
                 n_bad: int, n_dup: int, bad_counts: np.ndarray) -> str:
    """Format a chunk as CSV text, break ``n_bad`` lines and repeat ``n_dup`` others.

    Bad lines are counted per kind into ``bad_counts`` (in place) for the Summary.
    """
    rows = list(zip(*(column.tolist() for column in columns), strict=True))
    lines = [shape.template % row for row in rows]
    picked = rng.choice(len(lines), n_bad + n_dup, replace=False)
    kinds = rng.integers(len(shape.corruptions), size=n_bad)
    for i, kind in zip(picked[:n_bad].tolist(), kinds.tolist(), strict=True):
        corruption = shape.corruptions[kind]
        fields = [fmt % value for fmt, value in zip(shape.field_formats, rows[i], strict=True)]
        fields[corruption.field] = corruption.make(fields[corruption.field])
        lines[i] = ",".join(fields)
    bad_counts += np.bincount(kinds, minlength=len(shape.corruptions))
    repeats = np.ones(len(lines), dtype=np.int64)
    repeats[picked[n_bad:]] = 2
    return "".join(line + "\n" for line in np.repeat(np.array(lines, dtype=object), repeats).tolist())


@contextmanager
def open_output(path: Path) -> Iterator[TextIO]:
    """Text sink; ``.gz`` paths get gzip with a fixed header so output bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed, \
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
            yield text
    else:
        with open(path, "w", encoding="utf-8", newline="") as text:
            yield text


@dataclass
class Summary:
    """What was written, so callers (and data/sample/README.md) can state exact counts."""

    shape: str
    path: str
    rows: int
    bad_rows: dict[str, int]
    duplicate_rows: int
    closed_days: list[date]
    anomaly_dates: list[date]
    next_invoice: int | None
    write_off_days: list[date]  # negative days: a write-off above the day's sales


def as_date(value: date | str) -> date:
    """Accept ISO strings as well as dates, so callers and tests can pass either."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def generate(shape: str, rows: int, out: str | Path, start: date | str = date(2025, 5, 1),
             end: date | str = date(2026, 11, 20), seed: int = 7, bad_share: float = 0.0,
             dup_share: float = 0.0, anomalies: bool = True,
             first_invoice: int = FIRST_INVOICE, yearly_growth: float = YEARLY_GROWTH,
             level_shift: LevelShift | None = None) -> Summary:
    """Write ``rows`` data lines of ``shape`` covering ``start``..``end`` (inclusive) to ``out``.

    ``first_invoice`` (retail and wholesale) lets a file continue the numbering of the
    previous period's file; ``Summary.next_invoice`` is the value to pass for that.
    """
    spec = SHAPES[shape]
    start, end = as_date(start), as_date(end)
    if end < start or rows < 1:
        raise ValueError("need rows >= 1 and end >= start")
    if min(bad_share, dup_share) < 0 or bad_share + dup_share >= 0.5:
        raise ValueError("bad_share and dup_share must be >= 0 and together < 0.5")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    day_share = np.ones(len(days))
    if spec.last_day_until is not None:
        day_share[-1] = share_before(spec, spec.last_day_until)
    volume = daily_volume(spec, days, seed, anomalies, yearly_growth, level_shift) * day_share
    if not volume.any():
        raise ValueError("every day in the range is a closure day")

    n_dup, n_bad = round(rows * dup_share), round(rows * bad_share)
    distinct = rows - n_dup
    rows_per_day = allocate(distinct, volume)
    events = planted(spec, days, anomalies)
    written_off = np.array([day in events.write_offs for day in days])
    write_off = np.where(written_off, WRITE_OFF_SHARE * rows_per_day, 0.0)
    calendar = Calendar(spec, days, rows_per_day, day_share, write_off)
    model = spec.model(np.random.default_rng([seed, CATALOGUE_STREAM]), first_invoice)
    rng = np.random.default_rng([seed, spec.stream, start.toordinal()])
    bad_counts = np.zeros(len(spec.corruptions), dtype=np.int64)

    with open_output(Path(out)) as sink:
        sink.write(spec.header + "\n")
        for lo in range(0, distinct, CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, distinct)
            columns = model.columns(rng, calendar.lines(rng, lo, hi))
            sink.write(render_chunk(spec, columns, rng, share_of_range(n_bad, lo, hi, distinct),
                                    share_of_range(n_dup, lo, hi, distinct), bad_counts))

    return Summary(
        shape=shape, path=str(out), rows=rows,
        bad_rows={c.label: int(n) for c, n in zip(spec.corruptions, bad_counts, strict=True)},
        duplicate_rows=n_dup,
        closed_days=[d for d, v in zip(days, volume, strict=True) if v == 0],
        anomaly_dates=list(events.anomalies),
        next_invoice=getattr(model, "next_invoice", None),
        write_off_days=[d for d, n, w in zip(days, rows_per_day, written_off, strict=True) if n and w],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point; prints the Summary so the counts can be documented."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--rows", type=int, required=True, help="exact number of data lines")
    parser.add_argument("--out", type=Path, required=True, help="CSV path; .gz suffix compresses")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 5, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 20))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad-share", type=float, default=0.0)
    parser.add_argument("--dup-share", type=float, default=0.0)
    parser.add_argument("--no-anomalies", dest="anomalies", action="store_false")
    parser.add_argument("--first-invoice", type=int, default=FIRST_INVOICE,
                        help="retail, wholesale: first invoice number (continue a previous file)")
    parser.add_argument("--yearly-growth", type=float, default=YEARLY_GROWTH,
                        help=f"trend factor per year (default {YEARLY_GROWTH}; 1.0 is flat)")
    parser.add_argument("--shift-day", type=date.fromisoformat, help="level shift: first day of the new level")
    parser.add_argument("--shift-factor", type=float, default=1.0, help="level shift: volume factor from --shift-day")
    args = parser.parse_args(argv)
    shift = LevelShift(args.shift_day, args.shift_factor) if args.shift_day else None
    summary = generate(args.shape, args.rows, args.out, args.start, args.end, args.seed,
                       args.bad_share, args.dup_share, args.anomalies, args.first_invoice, args.yearly_growth, shift)
    print(f"wrote {summary.rows} rows to {summary.path}")
    print(f"  bad rows: {sum(summary.bad_rows.values())} {summary.bad_rows}")
    print(f"  duplicate rows: {summary.duplicate_rows}")
    print(f"  closed days: {[d.isoformat() for d in summary.closed_days]}")
    print(f"  anomaly dates: {[d.isoformat() for d in summary.anomaly_dates]}")
    if summary.write_off_days:
        print(f"  write-off days: {[d.isoformat() for d in summary.write_off_days]}")
    if summary.next_invoice is not None:
        print(f"  next invoice: {summary.next_invoice}")


if __name__ == "__main__":
    main()
