"""Freshness: the latest daily partition must exist by mid-morning, or the UI says the numbers are stale.

The per-materialisation checks (one row per key, revenue reconciled with transactions, file and row acceptance,
grounded narrative) are declared as check_specs on their assets and evaluated in the same run.
"""

import dagster as dg

from analytics_pipeline.assets.metrics import daily_metrics, daily_region_metrics

daily_freshness_checks = dg.build_time_partition_freshness_checks(
    assets=[daily_metrics, daily_region_metrics], deadline_cron="0 3 * * *", timezone="UTC"
)

freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=daily_freshness_checks,
    minimum_interval_seconds=600,  # the deadline is daily; checking every few seconds only fills the Runs page
    default_status=dg.DefaultSensorStatus.RUNNING,
)
