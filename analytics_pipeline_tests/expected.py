"""An independent reading of the sample files with plain pandas, to cross-check what the pipeline stores.

Nothing here imports the pipeline's parsing code: if both agree, the SQL typing, de-duplication and aggregation are
right, not merely self-consistent.
"""

from pathlib import Path

import pandas as pd


def retail(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False).drop_duplicates()
    frame = pd.DataFrame(
        {
            "order_id": raw["InvoiceNo"].str.strip(),
            "occurred_at": pd.to_datetime(raw["InvoiceDate"], format="%m/%d/%Y %H:%M", errors="coerce", utc=True),
            "quantity": pd.to_numeric(raw["Quantity"], errors="coerce"),
            "price": pd.to_numeric(raw["UnitPrice"], errors="coerce"),
            "region": raw["Country"],
            "customer": raw["CustomerID"].replace("", None),
        }
    )
    valid = (
        frame["occurred_at"].notna() & frame["quantity"].notna() & frame["price"].notna() & (frame["order_id"] != "")
    )
    frame = frame[valid].copy()
    frame["amount"] = frame["quantity"] * frame["price"]
    frame["is_order"] = ~frame["order_id"].str.startswith("C")
    return frame


def billing(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False).drop_duplicates()
    frame = pd.DataFrame(
        {
            "occurred_at": pd.to_datetime(raw["timestamp"], format="ISO8601", errors="coerce", utc=True),
            "quantity": pd.to_numeric(raw["token_count"], errors="coerce"),
            "amount": pd.to_numeric(raw["cost"], errors="coerce"),
            "region": raw["region"],
            "customer": raw["user"],
        }
    )
    frame = frame[frame["occurred_at"].notna() & frame["quantity"].notna() & frame["amount"].notna()].copy()
    frame["order_id"] = [f"billing-{i}" for i in range(len(frame))]  # every usage record is its own order
    frame["is_order"] = True
    return frame


def transactions(paths: list[Path]) -> pd.DataFrame:
    frames = [retail(p) if "retail" in p.name else billing(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    frame["day"] = frame["occurred_at"].dt.date
    return frame


def daily(frame: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    keys = ["day", by] if by else ["day"]
    grouped = frame.groupby(keys)
    return pd.DataFrame(
        {
            "revenue": grouped["amount"].sum().round(2),
            "orders": frame[frame["is_order"]].groupby(keys)["order_id"].nunique(),
            "units": grouped["quantity"].sum(),
        }
    ).fillna({"orders": 0}).reset_index()
