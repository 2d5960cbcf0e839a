"""The one place where assets, checks, sensors, schedules and resources meet."""

import os

import dagster as dg
from dagster_openai import OpenAIResource

from analytics_pipeline.assets import anomalies, charts, forecasting, insights, metrics, transactions, uploads
from analytics_pipeline.jobs import daily_refresh_job, ingest_upload_job
from analytics_pipeline.resources import UploadFolders, Warehouse
from analytics_pipeline.schedules import daily_refresh_schedule
from analytics_pipeline.sensors import touched_days_sensor, upload_sensor


def _openai() -> OpenAIResource:
    """GPT when OPENAI_API_KEY is set (from the environment only); an empty key makes insights write offline."""
    if not os.environ.get("OPENAI_API_KEY"):
        return OpenAIResource(api_key="")
    base_url = dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None
    return OpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=base_url)


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([uploads, transactions, metrics, forecasting, anomalies, insights, charts]),
    jobs=[ingest_upload_job, daily_refresh_job],
    sensors=[upload_sensor, touched_days_sensor],
    schedules=[daily_refresh_schedule],
    resources={"warehouse": Warehouse(), "folders": UploadFolders(), "openai": _openai()},
)
