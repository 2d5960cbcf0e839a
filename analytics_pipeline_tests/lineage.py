"""The asset graph as the README draws it: every asset's group and every edge, upstream -> downstream.

One snapshot for two tests: test_definitions checks the code's definitions against it in a second, and
test_ui_journeys checks that the running UI serves the same lineage.
"""

DAILY = ("daily_metrics", "daily_region_metrics", "daily_product_metrics", "daily_company_metrics")

GROUPS = {
    "ingestion": {"raw_uploads", "transactions", "database_transactions", "api_transactions"},
    "metrics": set(DAILY),
    "forecasting": {"revenue_forecast", "metric_anomalies"},
    "insights": {"insights", "findings_index"},
    "reporting": {"revenue_chart"},
}

EDGES = {
    ("raw_uploads", "transactions"),
    *{(source, table) for source in ("transactions", "database_transactions", "api_transactions") for table in DAILY},
    *{(table, model) for table in ("daily_metrics", "daily_region_metrics")
      for model in ("revenue_forecast", "metric_anomalies", "insights", "revenue_chart")},
    ("daily_product_metrics", "insights"),
    *{(model, consumer) for model in ("revenue_forecast", "metric_anomalies")
      for consumer in ("insights", "revenue_chart")},
    *{(found, "findings_index") for found in ("insights", "revenue_forecast", "metric_anomalies")},
}

PARTITIONED = {"raw_uploads", "transactions", *DAILY}
