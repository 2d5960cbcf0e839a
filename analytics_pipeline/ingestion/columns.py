"""Map a file's own header names onto the canonical transaction.

Real exports name the same thing many ways ("InvoiceDate", "order_date", "Timestamp"). Names are compared after
dropping case, spaces and punctuation; for each canonical field the first alias present wins, so an order date is
preferred over a ship date simply by being listed first.
"""

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

# Bounds on what a row may hold, so that no accepted value can break a table downstream. The daily tables keep
# revenue as numeric(18, 2), below 10^16: at 10^12 a line, a day needs 10,000 lines at the limit to reach it. A
# longer value than 500 characters is no id, name or number (a 10 MB "product" broke daily_product_metrics: a
# btree entry holds at most 2,704 bytes, and 500 characters are at most 2,000). Rejected, never truncated: a cut
# value would merge distinct products or ids without anyone knowing.
MAX_ABS_VALUE = 10**12
MAX_TEXT_CHARS = 500
CANONICAL_FIELDS = (
    "transaction_id",
    "order_id",
    "occurred_at",
    "customer_id",
    "company",
    "region",
    "product",
    "quantity",
    "unit_price",
    "amount",
    "currency",
)

ALIASES: dict[str, tuple[str, ...]] = {
    "transaction_id": ("transactionid", "rowid", "lineid", "lineitemid", "txnid"),
    "order_id": (
        "orderid", "invoiceno", "invoice", "invoiceid", "invoicenumber", "ordernumber", "orderno", "order",
        "saleid", "salenumber", "receiptid", "receiptno", "receiptnumber",  # point-of-sale exports (Lightspeed, Square)
    ),
    "occurred_at": (
        "orderdate",
        "invoicedate",
        "transactiondate",
        "occurredat",
        "timestamp",
        "createdat",
        "createdutc",  # Stripe's "Created (UTC)"
        "saledate",
        "datetime",
        "date",
        "time",
        "shipdate",
    ),
    "customer_id": ("customerid", "customer", "userid", "user", "clientid", "client", "accountid"),
    "company": ("company", "companyname", "organization", "organisation", "account"),
    "region": ("region", "country", "market", "territory"),
    "product": ("product", "productid", "sku", "stockcode", "itemcode", "modelname", "model", "productname", "item"),
    "quantity": ("quantity", "qty", "units", "tokencount", "tokens"),
    "unit_price": ("unitprice", "price", "priceeach", "rate"),
    "amount": ("amount", "total", "totalprice", "lineamount", "cost", "revenue", "sales"),
    "currency": ("currency", "currencycode"),
}

REQUIRED_DESCRIPTION = "a timestamp column and either an amount column or quantity and unit price columns"
# A reason names the columns it saw, but a header can hold thousands of names of any length: a reason stays short.
_LISTED_COLUMNS, _LISTED_CHARS = 50, 100


class UnmappableColumns(ValueError):
    """The file lacks a column the canonical transaction cannot do without."""


@dataclass(frozen=True)
class ColumnMapping:
    """canonical field -> the file's own column name, for the fields the file has."""

    source_columns: dict[str, str]

    @property
    def has_amount(self) -> bool:
        return "amount" in self.source_columns

    def missing_required(self) -> list[str]:
        have = self.source_columns
        missing = [] if "occurred_at" in have else ["occurred_at"]
        if "amount" not in have:
            missing += [f for f in ("quantity", "unit_price") if f not in have]
        return missing


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def map_columns(header: list[str], overrides: Mapping[str, str] | None = None) -> ColumnMapping:
    """Match a header to canonical fields, or raise naming what was seen and what is needed.

    ``overrides`` (canonical field -> the source's column name) come from configuration and win over aliases.
    """
    repeated = [column for column, count in Counter(header).items() if count > 1]  # linear: 10,000 columns is fine
    if repeated:
        raise UnmappableColumns(f"duplicate column name(s) {_listed(repeated)}: the file has columns {_listed(header)}")
    by_normalised: dict[str, str] = {}
    for column in header:
        by_normalised.setdefault(normalise(column), column)
    mapping: dict[str, str] = {}
    for field, column in (overrides or {}).items():
        if field not in CANONICAL_FIELDS:
            raise UnmappableColumns(f"unknown canonical field {field!r} in the column mapping")
        if column not in header:
            raise UnmappableColumns(
                f"the column mapping names {column!r} for {field}, but the source has columns {_listed(header)}"
            )
        mapping[field] = column
    for field in CANONICAL_FIELDS:
        if field in mapping:
            continue
        for alias in ALIASES[field]:
            if alias in by_normalised and by_normalised[alias] not in mapping.values():
                mapping[field] = by_normalised[alias]
                break
    result = ColumnMapping(mapping)
    missing = result.missing_required()
    if missing:
        raise UnmappableColumns(
            f"cannot find required column(s) {', '.join(missing)}: the file has columns {_listed(header)}; "
            f"it needs {REQUIRED_DESCRIPTION}"
        )
    return result


def _listed(names: list[str]) -> str:
    """Names as a reason quotes them: the first 50, each cut at 100 characters, and how many more there are."""
    shown = [repr(n if len(n) <= _LISTED_CHARS else n[:_LISTED_CHARS] + "...") for n in names[:_LISTED_COLUMNS]]
    more = len(names) - _LISTED_COLUMNS
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "") or "(none)"
