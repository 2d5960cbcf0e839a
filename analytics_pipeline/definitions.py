"""The one place where assets, checks, sensors, schedules and resources meet."""

import os

import dagster as dg
from analytics_pipeline.assets import anomalies, charts, forecasting, insights, metrics, transactions, uploads
from analytics_pipeline.jobs import daily_refresh_job, ingest_upload_job
from analytics_pipeline.resources import OptionalOpenAIResource, UploadFolders, Warehouse
from analytics_pipeline.schedules import daily_refresh_schedule
from analytics_pipeline.sensors import touched_days_sensor, upload_sensor


def _openai() -> OptionalOpenAIResource:
    """GPT when OPENAI_API_KEY is set (read from the environment only); without it insights are written offline."""
    if not os.environ.get("OPENAI_API_KEY"):
        return OptionalOpenAIResource()
    base_url = dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None
    return OptionalOpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=base_url)


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([uploads, transactions, metrics, forecasting, anomalies, insights, charts]),
    jobs=[ingest_upload_job, daily_refresh_job],
    sensors=[upload_sensor, touched_days_sensor],
    schedules=[daily_refresh_schedule],
    resources={"warehouse": Warehouse(), "folders": UploadFolders(), "openai": _openai()},
)
