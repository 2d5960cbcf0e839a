"""Jobs the sensors and schedules launch, and the question job; the UI can launch them all."""

import dagster as dg

from analytics_pipeline.ask import ask_findings

ingest_upload_job = dg.define_asset_job(
    "ingest_upload_job",
    selection=dg.AssetSelection.assets("raw_uploads", "transactions"),
    description="Stage one uploaded file and load its transactions (one partition = one file).",
)

# The daily metrics and everything computed from them. Runs take one month partition (schedule) or a range of months
# through the partition-range tags (refresh sensor, demo, backfills); the downstream analytics are unpartitioned and
# recompute once.
daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.groups("metrics", "forecasting", "insights", "reporting"),
    description="Recompute daily metrics for a month or range of months, then forecasts, anomalies, insights, charts.",
)

database_pull_job = dg.define_asset_job(
    "database_pull_job",
    selection=dg.AssetSelection.assets("database_transactions"),
    description="Pull the operational database's new and changed rows into the transactions.",
)

api_pull_job = dg.define_asset_job(
    "api_pull_job",
    selection=dg.AssetSelection.assets("api_transactions"),
    description="Pull the REST API's new and changed records into the transactions.",
)


@dg.job(
    description=(
        "Ask the findings a question: put it in the launchpad's config (ops: ask_findings: config: question: ...). "
        "The most relevant past insights, anomalies and forecasts, and with OPENAI_API_KEY a grounded answer, are "
        "recorded on findings_index as an observation (its page, Events); `analytics ask` runs this job too."
    ),
)
def ask_findings_job():
    ask_findings()
