"""The forecast benchmark's machinery on one small generated wholesaler: the generator's ground truth holds (the
benchmark's verdicts mean nothing if it does not), the files are read and aggregated as the warehouse would, and the
metrics give exact values on hand-made numbers. The acceptance targets are benchmark results, not asserted here."""

from __future__ import annotations

import filecmp
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest

from analytics_pipeline import paths
from analytics_pipeline_tests.conftest import benchmark_module

bench = benchmark_module("forecast_benchmark")
generator = benchmark_module("generate_transactions")

START, END = date(2023, 3, 1), date(2025, 4, 24)  # END is a Thursday: the export was taken at noon on it
SHIFT = generator.LevelShift(date(2024, 6, 3), 1.25)  # early summer: the season is flat around it
CHRISTMAS = {(12, d) for d in range(24, 32)} | {(1, d) for d in range(1, 4)}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple:
    """A sparse two-year wholesaler (~15 orders a trading day): its Summary, transactions and daily frame."""
    path = tmp_path_factory.mktemp("wholesale") / "wholesale.csv"
    truth = generator.generate("wholesale", 60_000, path, START, END, seed=5, yearly_growth=1.05, level_shift=SHIFT)
    rows = bench.transactions([path])
    return truth, rows, bench.daily(rows).set_index("day")


def test_no_rows_on_saturdays_bank_holidays_or_the_christmas_shutdown(history) -> None:
    truth, rows, days = history
    seen = set(rows["occurred_at"].dt.date)
    bank = set(holidays.country_holidays("GB", subdiv="ENG", years=range(START.year, END.year + 1)))
    assert {d.weekday() for d in seen} == {0, 1, 2, 3, 4, 6}
    assert not seen & bank
    assert not {d for d in seen if (d.month, d.day) in CHRISTMAS}
    every_day = {START + timedelta(days=i) for i in range((END - START).days + 1)}
    assert set(truth.closed_days) == every_day - seen  # the Summary's closed days are exactly the days without rows
    assert date(2024, 3, 29) in truth.closed_days and date(2024, 12, 27) in truth.closed_days  # Good Friday, shutdown


def test_write_offs_make_their_days_negative(history) -> None:
    truth, rows, days = history
    assert 3 <= len(truth.write_off_days) <= 5
    assert (days.loc[pd.to_datetime(truth.write_off_days), "revenue"] < 0).all()
    assert (days.drop(pd.to_datetime(truth.write_off_days))["revenue"] >= 0).all()
    cancelled = rows[rows["cancelled"] & rows["occurred_at"].dt.date.isin(truth.write_off_days)]
    assert cancelled["amount"].min() < -days["revenue"].max() / 2  # one big cancellation line, not many small ones


def test_planted_anomalies_are_spikes_and_drops_on_trading_days(history) -> None:
    truth, rows, days = history
    assert len(truth.anomaly_dates) == 9 and not set(truth.anomaly_dates) & set(truth.closed_days)
    assert not set(truth.anomaly_dates) & set(truth.write_off_days)
    for day in truth.anomaly_dates:
        usual = days["orders"].reindex(pd.to_datetime([day - timedelta(weeks=k) for k in range(1, 5)])).median()
        factor = generator.planted(generator.SHAPES["wholesale"], [day]).anomalies[day].factor
        ratio = days.loc[pd.Timestamp(day), "orders"] / usual
        assert ratio > 1.5 if factor > 1 else ratio < 0.6, (day, factor, ratio)


def test_the_last_day_stops_at_midday_and_the_benchmark_drops_it(history) -> None:
    truth, rows, days = history
    assert days["last_at"].iloc[-1] < 13 * 3600
    assert (days["last_at"].iloc[-29:-1].dropna() > 15 * 3600).all()  # ordinary days trade into the evening
    kept, facts = bench.prepared(rows)
    assert kept["day"].iloc[-1] == pd.Timestamp(END - timedelta(days=1))
    assert facts["partial last day"].startswith(f"{END} is incomplete")


def test_the_level_shift_is_visible(history) -> None:
    truth, rows, days = history
    trading = days[days["orders"] > 0]["revenue"]
    shift, six_weeks = pd.Timestamp(SHIFT.day), pd.Timedelta(weeks=6)
    before = trading[shift - six_weeks : shift - pd.Timedelta(days=1)].median()
    after = trading[shift : shift + six_weeks].median()
    assert 1.12 < after / before < 1.4


def test_the_same_seed_writes_the_same_file_and_the_samples_are_unchanged(tmp_path: Path) -> None:
    """Deterministic per seed; the new shape leaves every existing output byte-identical (the bundled samples)."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        generator.generate("wholesale", 5_000, path, "2024-01-01", "2024-12-31", seed=3)
    assert filecmp.cmp(first, second, shallow=False)
    common = {"seed": 7, "bad_share": 0.002, "dup_share": 0.003}
    generator.generate("retail", 15_300, tmp_path / "r25.csv", "2025-05-01", "2025-12-31", **common)
    generator.generate("retail", 24_700, tmp_path / "r26.csv", "2026-01-01", "2026-11-20", first_invoice=540892,
                       **common)
    generator.generate("billing", 25_000, tmp_path / "b.csv", "2025-05-01", "2026-11-20", **common)
    for ours, sample in (("r25", "online_retail_2025"), ("r26", "online_retail_2026"), ("b", "api_billing")):
        assert filecmp.cmp(tmp_path / f"{ours}.csv", paths.sample_dir() / f"{sample}.csv", shallow=False)


def test_files_are_typed_as_the_warehouse_types_them(tmp_path: Path) -> None:
    """Duplicates, bad dates, empty invoice numbers dropped; cancellations net off revenue but are no order."""
    path = tmp_path / "tiny.csv"
    path.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "1,A,a,2,3/2/2026 9:05,1.50,1,United Kingdom\n"
        "1,B,b,1,3/2/2026 9:05,4.00,1,United Kingdom\n"
        "1,B,b,1,3/2/2026 9:05,4.00,1,United Kingdom\n"  # an exact repeat
        "C2,A,a,-1,3/2/2026 16:30,1.50,2,United Kingdom\n"
        "3,A,a,1,not a date,1.50,3,United Kingdom\n"
        ",A,a,1,3/4/2026 10:00,1.50,3,United Kingdom\n"  # no invoice number
        "4,A,a,4,3/4/2026 11:15,2.00,3,France\n"
    )
    days = bench.daily(bench.transactions([path]))
    assert days["day"].tolist() == list(pd.date_range("2026-03-02", "2026-03-04"))
    assert days["revenue"].tolist() == [5.5, 0.0, 8.0]
    assert days["orders"].tolist() == [1.0, 0.0, 1.0]
    assert days["avg_order_value"].iloc[[0, 2]].tolist() == [5.5, 8.0] and np.isnan(days["avg_order_value"].iloc[1])
    assert days["last_at"].iloc[[0, 2]].tolist() == [16.5 * 3600, 11.25 * 3600] and np.isnan(days["last_at"].iloc[1])


def test_metrics_on_a_hand_made_example() -> None:
    actual = np.array([10.0, 0.0, 5.0, 20.0])
    pred = np.array([8.0, 0.0, 10.0, 20.0])
    assert bench.mae(actual, pred) == 1.75
    assert bench.smape(actual, pred) == pytest.approx((4 / 18 + 10 / 15) / 4 * 100)  # 0/0 counts as 0
    assert bench.mase(actual, pred, np.array([10.0, 5.0, 5.0, 10.0])) == pytest.approx(1.75 / 3.75)
    assert bench.coverage(actual, np.array([9.0, 0.0, 6.0, 15.0]), np.array([12.0, 0.0, 12.0, 25.0])) == 0.75


def test_origins_leave_exactly_the_horizon_after_the_last() -> None:
    assert bench.origins(100) == [23, 30, 37, 44, 51, 58, 65, 72]
    assert bench.last_week(np.arange(20.0), 14).tolist() == [7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0] * 4
