"""A history that ends in a half day, loaded as a user would: the insight reports up to the last complete day, says
why the latest one is left out, and every number in it is grounded."""

import csv
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.assets.insights import GROUNDED_CHECK
from analytics_pipeline.warehouse import series
from analytics_pipeline_tests.conftest import load_uploads, refresh_days

FIRST, LAST = pd.Timestamp("2024-01-08"), pd.Timestamp("2024-03-15")  # a Monday to a Friday
HOURS = [f"{hour:02d}:00" for hour in range(9, 18)] + ["17:30"]  # ten orders of 100.00 a trading day
HALF_DAY = ["09:00", "10:00", "11:00", "12:04"]  # the export was taken at lunchtime
LATE_WEDNESDAY = "2024-03-13T20:45:00-03:00"  # 23:45 UTC: still Wednesday in the warehouse's UTC days
REASON = "2024-03-15 is incomplete: its last transaction is at 12:04, a Friday usually ends around 17:30"


def write_orders(path) -> None:
    """Orders every day but Sunday (closed), in the online-retail export layout."""
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                      "Country"])
        for day in pd.date_range(FIRST, LAST, freq="D"):
            if day.day_of_week == 6:
                continue
            for clock in HALF_DAY if day == LAST else HOURS:
                when = f"{day:%Y-%m-%d}T{clock}:00Z"
                if day == pd.Timestamp("2024-03-13") and clock == "17:30":
                    when = LATE_WEDNESDAY
                out.writerow([f"{day:%m%d}{clock.replace(':', '')}", "W1", "Widget", 1, when, "100.00", "C1",
                              "United Kingdom"])


def test_the_insight_reports_the_complete_days_and_names_the_partial_one(engine, instance, folders):
    upload = folders.uploads_path / "shop_orders.csv"
    write_orders(upload)
    load_uploads(instance, folders, [upload])
    selection = ["daily_metrics", "daily_region_metrics", "daily_product_metrics", "insights"]
    before = datetime.now(UTC).date()
    result = refresh_days(instance, str(FIRST.date()), str(LAST.date()), selection)

    with engine.connect() as conn:
        seen, today = series.last_seen(conn), series.today(conn)
        stored = conn.execute(
            sa.text("SELECT narrative, facts, ungrounded FROM analytics.insights ORDER BY insight_id DESC LIMIT 1")
        ).mappings().one()

    # The last 63 days' last transactions, in seconds after UTC midnight; Sundays have none.
    assert today in (before, datetime.now(UTC).date())
    assert len(seen) == 63 and seen["day"].iloc[-1] == LAST
    last_at = seen.set_index("day")["last_at"]
    assert last_at[LAST] == 12 * 3600 + 4 * 60
    assert last_at[pd.Timestamp("2024-03-13")] == 23 * 3600 + 45 * 60
    assert last_at[pd.Timestamp("2024-03-14")] == 17 * 3600 + 30 * 60
    assert np.isnan(last_at[pd.Timestamp("2024-03-10")])

    facts = stored["facts"]
    assert facts["latest_day"] == "2024-03-14"
    assert facts["partial_day"] == {"day": "2024-03-15", "reason": REASON}
    week = facts["windows"]["last_7_days"]
    assert (week["start"], week["end"]) == ("2024-03-08", "2024-03-14")
    assert week["revenue"] == {"current": 6000.0, "previous": 6000.0, "change": 0.0, "change_pct": 0.0}
    assert week["orders"] == {"current": 60, "previous": 60, "change": 0.0, "change_pct": 0.0}
    assert stored["narrative"].startswith(
        f"What changed: Data up to 2024-03-14, the last complete day. {REASON}; it is left out. Last 7 days "
        "(2024-03-08 to 2024-03-14): revenue 6,000.00, unchanged vs 6,000.00; orders 60, unchanged vs 60;"
    )
    assert list(stored["ungrounded"]) == []

    metadata = result.asset_materializations_for_node("insights")[0].metadata
    assert metadata["partial_day"].value == REASON
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == GROUNDED_CHECK]
    assert check.passed
