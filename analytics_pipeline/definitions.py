"""The one place where assets, checks, sensors, schedules and resources meet."""

import dagster as dg

from analytics_pipeline.assets import metrics, transactions, uploads
from analytics_pipeline.resources import UploadFolders, Warehouse

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([uploads, transactions, metrics]),
    resources={"warehouse": Warehouse(), "folders": UploadFolders()},
)
