"""Schedules: keep yesterday's numbers and everything computed from them fresh."""

from datetime import timedelta

import dagster as dg

from analytics_pipeline.jobs import daily_refresh_job


@dg.schedule(
    job=daily_refresh_job,
    cron_schedule="15 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 01:15 UTC: yesterday's daily metrics, then forecasts, anomalies, insights, charts.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=yesterday, partition_key=yesterday)
