"""A check every load runs: are its transactions inside the months the daily tables cover?

The monthly partitions start in 1900 and end with the current month, so only future-dated rows, or rows before a
later ANALYTICS_START_DATE, fall outside. Such rows are loaded but never aggregated; the load says so in its
metadata and fails this check with the fix, instead of the numbers going missing silently.

The other checks (one row per key, revenue reconciled, file and row acceptance, grounded narrative) are declared as
check_specs on their assets and evaluated in the same run; freshness is a FreshnessPolicy on the daily tables.
"""

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.partitions import START_DATE_ENV, analysed_days

ANALYSED_CHECK = "days_within_analysed_months"

_OUTSIDE = """
SELECT count(*) FILTER (WHERE day < :lo) AS before, count(*) FILTER (WHERE day > :hi) AS after,
       min(day) FILTER (WHERE day < :lo) AS earliest, max(day) FILTER (WHERE day > :hi) AS latest
FROM analytics.transactions WHERE source = :source
"""


def analysed_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ANALYSED_CHECK,
        asset=asset,
        description=(
            "Every transaction this load wrote falls on a day the daily tables cover (monthly partitions from "
            f"{START_DATE_ENV}, default 1900-01, to the current month); rows outside are loaded but not analysed."
        ),
    )


def analysed_check(conn: sa.Connection, source: str) -> tuple[dict, dg.AssetCheckResult]:
    """Metadata for the load's materialisation and the check result, for the rows with this `source`."""
    lo, hi = analysed_days()
    row = conn.execute(sa.text(_OUTSIDE), {"lo": lo, "hi": hi, "source": source}).mappings().one()
    problems = []
    if row["before"]:
        problems.append(
            f"{_rows(row['before'])} before {lo} (earliest {row['earliest']}): set {START_DATE_ENV}="
            f"{row['earliest']:%Y-%m}-01 or earlier (or unset it; the default starts in 1900), restart Dagster and "
            "backfill the new months"
        )
    if row["after"]:
        problems.append(
            f"{_rows(row['after'])} dated after {hi} (latest {row['latest']}), in a month that has not begun: "
            "check the file's dates and time zone; they are aggregated once their month arrives"
        )
    outside = row["before"] + row["after"]
    metadata = {"rows_outside_analysed_months": outside, "analysed_months": f"{lo:%Y-%m}..{hi:%Y-%m}"}
    return metadata, dg.AssetCheckResult(
        check_name=ANALYSED_CHECK,
        passed=outside == 0,
        description="; ".join(problems) or None,
        metadata=metadata,
    )


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def nothing_loaded(reason: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=ANALYSED_CHECK, passed=True, description=f"nothing loaded: {reason}")


def combined(check_name: str, results: list[tuple[str, dg.AssetCheckResult]]) -> dg.AssetCheckResult:
    """One result for a run over several files (a check is evaluated once per run): passed when every file passed;
    the description names each file that did not, with its own words; counts are summed over the files. A run of
    one file keeps that file's result as it is."""
    if len(results) == 1:
        return results[0][1]
    failed = [(name, result) for name, result in results if not result.passed]
    metadata: dict = {"files_checked": len(results), "files_failed": len(failed)}
    for _, result in results:
        for label, value in result.metadata.items():
            if isinstance(value.value, int) and not isinstance(value.value, bool):
                metadata[label] = metadata.get(label, 0) + value.value
    errors = any(result.severity == dg.AssetCheckSeverity.ERROR for _, result in failed)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(failed)} of {len(results)} files: "
            + "; ".join(f"{name}: {r.description}" for name, r in failed[:10])
            + ("; …" if len(failed) > 10 else "")
        ) if failed else None,
        metadata=metadata,
    )
