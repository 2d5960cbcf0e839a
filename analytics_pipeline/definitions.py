"""The one place where assets, checks, sensors, schedules and resources meet."""

import json
import os
import typing

import dagster as dg

from analytics_pipeline.assets import (
    anomalies,
    charts,
    findings,
    forecasting,
    insights,
    metrics,
    sources,
    transactions,
    uploads,
)
from analytics_pipeline.jobs import (
    api_pull_job,
    ask_findings_job,
    daily_refresh_job,
    database_pull_job,
    ingest_upload_job,
)
from analytics_pipeline.resources import (
    API_SOURCE_PREFIX,
    DATABASE_SOURCE_PREFIX,
    DatabaseSource,
    OptionalOpenAIResource,
    RestApiSource,
    Warehouse,
    uploads_from_environment,
)
from analytics_pipeline.schedules import api_pull_schedule, daily_refresh_schedule, database_pull_schedule
from analytics_pipeline.sensors import touched_days_sensor, upload_sensor


def _openai() -> OptionalOpenAIResource:
    """GPT when OPENAI_API_KEY is set (read from the environment only); without it insights are written offline."""
    if not os.environ.get("OPENAI_API_KEY"):
        return OptionalOpenAIResource()
    base_url = dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None
    return OptionalOpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=base_url)


def _source(resource: type[dg.ConfigurableResource], prefix: str, secret: str) -> dg.ConfigurableResource:
    """A source configured by <prefix><FIELD> variables (e.g. ANALYTICS_SOURCE_DATABASE_TABLE=orders; dict fields
    as JSON). The secret field stays a dg.EnvVar: read at run time, never shown in the UI or the run config."""
    config = {}
    for name, field in resource.model_fields.items():
        variable = prefix + name.upper()
        value = os.environ.get(variable)
        if not value:
            continue
        if name == secret:
            config[name] = dg.EnvVar(variable)
        else:
            config[name] = json.loads(value) if typing.get_origin(field.annotation) is dict else value
    return resource(**config)


defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [uploads, transactions, sources, metrics, forecasting, anomalies, insights, charts, findings]
    ),
    jobs=[ingest_upload_job, daily_refresh_job, database_pull_job, api_pull_job, ask_findings_job],
    sensors=[upload_sensor, touched_days_sensor],
    schedules=[daily_refresh_schedule, database_pull_schedule, api_pull_schedule],
    # Steps are SQL statements Postgres runs and a little pandas: one process per run beats a process per step
    # (seconds of start-up each), and the warehouse pool already bounds concurrent writers across runs.
    executor=dg.in_process_executor,
    resources={
        "warehouse": Warehouse(),
        "folders": uploads_from_environment(),
        "openai": _openai(),
        "database_source": _source(DatabaseSource, DATABASE_SOURCE_PREFIX, secret="url"),
        "api_source": _source(RestApiSource, API_SOURCE_PREFIX, secret="token"),
    },
)
