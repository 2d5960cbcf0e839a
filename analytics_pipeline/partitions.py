"""The two ways data is sliced: one partition per uploaded file, one per calendar month of the daily tables.

The daily tables are partitioned by month, not by day. Dagster writes a few events per partition and asset of a run,
so a run's bookkeeping grows with its partition count: twenty years of history are 240 months but 7,300 days, and
at about 20 ms an event the days alone would cost minutes before any SQL ran. A month is also what a person picks
in the backfill dialog. The SQL still works day by day inside whatever months a run covers.

The months start in 1900, so any history a user drops is analysed with nothing to configure; the last partition is
the current month (``end_offset=1``), refreshed daily while it fills. ``ANALYTICS_START_DATE`` can start them later
(a shorter partition strip in the UI); transactions outside the months are then reported by every load.
"""

import os
import warnings
from datetime import date, datetime, timedelta

import dagster as dg

# No public API asks for one run over a range of partitions: RunRequest and execute_in_process take a single
# partition_key, and a range is the two tags a single-run backfill puts on its run (RunRequest.partition_key_range
# reads them back). The tag names are Dagster's, so they come from where Dagster defines them.
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

# Single-run backfills exist only as the beta `backfill_policy` parameter; without it a backfill over twenty years
# would be one run per month, and a batch of uploads one run per file. Silence exactly that warning, which every
# process importing the definitions would otherwise print.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning)

def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the partitions first..last, as a single-run backfill launches it."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


upload_files = dg.DynamicPartitionsDefinition(name="upload_files")
# A run over a range of file partitions loads them one after another in one process: Dagster's per-run overhead is
# seconds, the load of a small file milliseconds.
FILES_IN_ONE_RUN = dg.BackfillPolicy.single_run()

START_DATE_ENV = "ANALYTICS_START_DATE"
DEFAULT_START = "1900-01-01"
MONTH_FORMAT = "%Y-%m"


def _first_month() -> datetime:
    """ANALYTICS_START_DATE as YYYY-MM-DD or YYYY-MM; the partitions start on the first of that month."""
    value = os.environ.get(START_DATE_ENV) or DEFAULT_START
    try:
        start = date.fromisoformat(value if len(value) > 7 else f"{value}-01")
    except ValueError as error:
        raise ValueError(f"{START_DATE_ENV}={value!r} is not a date like 2003-01-01 or 2003-01") from error
    return datetime(start.year, start.month, 1)


monthly = dg.MonthlyPartitionsDefinition(start_date=_first_month(), fmt=MONTH_FORMAT, timezone="UTC", end_offset=1)


def analysed_days() -> tuple[date, date]:
    """The first and last day the monthly partitions cover today."""
    first, last = monthly.get_first_partition_window(), monthly.get_last_partition_window()
    return first.start.date(), (last.end - timedelta(days=1)).date()


def month_key(day: date | str) -> str:
    return (date.fromisoformat(day) if isinstance(day, str) else day).strftime(MONTH_FORMAT)


def months_for(first_day: date | str, last_day: date | str) -> tuple[str, str] | None:
    """The first and last month partition holding the days first_day..last_day, clipped to the partitions; None
    when no partition holds any of them."""
    lo, hi = analysed_days()
    first = max(date.fromisoformat(str(first_day)), lo)
    last = min(date.fromisoformat(str(last_day)), hi)
    if first > last:
        return None
    return month_key(first), month_key(last)
