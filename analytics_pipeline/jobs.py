"""Jobs the sensors and schedules launch; the UI can launch them too."""

import dagster as dg

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
