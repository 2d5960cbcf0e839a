"""The two ways data is sliced: one partition per uploaded file, one per calendar day."""

import os

import dagster as dg

upload_files = dg.DynamicPartitionsDefinition(name="upload_files")

# Days are UTC calendar days. The start bounds the partitions the UI offers for backfills; history before it can be
# reached by setting ANALYTICS_START_DATE.
daily = dg.DailyPartitionsDefinition(start_date=os.environ.get("ANALYTICS_START_DATE", "2024-01-01"), timezone="UTC")
