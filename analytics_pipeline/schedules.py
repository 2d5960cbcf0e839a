"""Schedules: keep yesterday's numbers and everything computed from them fresh, and pull the sources hourly."""

import os
from datetime import timedelta

import dagster as dg

from analytics_pipeline.jobs import api_pull_job, daily_refresh_job, database_pull_job
from analytics_pipeline.partitions import month_key
from analytics_pipeline.resources import API_SOURCE_URL_ENV, DATABASE_SOURCE_URL_ENV


@dg.schedule(
    job=daily_refresh_job,
    cron_schedule="15 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every night at 01:15 UTC: the daily metrics of the month holding yesterday (its partition), then "
        "forecasts, anomalies, insights, charts."
    ),
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date()
    return dg.RunRequest(run_key=str(yesterday), partition_key=month_key(yesterday))


def _hourly_pull(job, minute: int, url_env: str) -> dg.ScheduleDefinition:
    """Running from the start only where the source is configured; elsewhere it waits, stopped, in the UI."""
    configured = bool(os.environ.get(url_env))
    return dg.ScheduleDefinition(
        name=job.name.replace("_job", "_schedule"),
        job=job,
        cron_schedule=f"{minute} * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING if configured else dg.DefaultScheduleStatus.STOPPED,
        description=f"Every hour at minute {minute}: {job.name}. Starts running by default only when {url_env} is set.",
    )


# Half an hour apart, so the two pulls do not queue behind each other for the warehouse pool.
database_pull_schedule = _hourly_pull(database_pull_job, 5, DATABASE_SOURCE_URL_ENV)
api_pull_schedule = _hourly_pull(api_pull_job, 35, API_SOURCE_URL_ENV)
