"""revenue_chart: revenue history with the forecast band and the anomalies, as a PNG shown in the UI."""

import base64
import io
from datetime import UTC, datetime

import dagster as dg
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import pandas as pd
import sqlalchemy as sa
from matplotlib.figure import Figure

from analytics_pipeline import paths
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import series
from analytics_pipeline.warehouse.contract import table_metadata
from analytics_pipeline.warehouse.db import fetch_frame

CHART_NAME = "revenue_overview"
HISTORY_DAYS = 180

_ANOMALIES = """
SELECT day, actual, direction FROM analytics.metric_anomalies
WHERE segment = 'total' AND metric = 'revenue' ORDER BY day
"""
_UPSERT = """
INSERT INTO analytics.charts (chart, path, png, generated_at) VALUES (:chart, :path, :png, :generated_at)
ON CONFLICT (chart) DO UPDATE SET path = EXCLUDED.path, png = EXCLUDED.png, generated_at = EXCLUDED.generated_at
"""


@dg.asset(
    deps=["daily_metrics", "revenue_forecast", "metric_anomalies"],
    group_name="reporting",
    kinds={"postgres", "matplotlib"},
    owners=["team:analytics"],
    pool="warehouse",
    metadata=table_metadata("charts"),
    description=(
        f"A PNG of daily revenue over the last {HISTORY_DAYS} days with the 30-day forecast and its 80% band, "
        "spikes and drops marked. Saved under data/reports/, stored in `analytics.charts`, and shown inline in "
        "this asset's metadata."
    ),
)
def revenue_chart(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        history = series.total_series(conn).tail(HISTORY_DAYS)
        forecast = series.total_forecast(conn)
        anomalies = fetch_frame(conn, _ANOMALIES)
    png = _render(history, forecast, anomalies)
    target = paths.reports_dir() / f"{CHART_NAME}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    with warehouse.transaction() as conn:
        conn.execute(
            sa.text(_UPSERT),
            {"chart": CHART_NAME, "path": str(target), "png": png, "generated_at": datetime.now(UTC)},
        )
    encoded = base64.b64encode(png).decode()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "chart": dg.MetadataValue.md(f"![daily revenue with forecast](data:image/png;base64,{encoded})"),
            "history_days": len(history),
            "forecast_days": len(forecast),
            "size_bytes": len(png),
        }
    )


def _render(history: pd.DataFrame, forecast: pd.DataFrame, anomalies: pd.DataFrame) -> bytes:
    """Figure without pyplot: no global state and no GUI backend, which matters in run workers and servers."""
    fig = Figure(figsize=(11, 4.5), dpi=100)
    ax = fig.subplots()
    ax.plot(history["day"], history["revenue"], color="#1f77b4", linewidth=1.2, label="revenue")
    if len(forecast):
        days = forecast["day"]
        ax.plot(days, forecast["predicted"], color="#ff7f0e", linestyle="--", linewidth=1.4, label="forecast")
        ax.fill_between(days, forecast["lower"], forecast["upper"], color="#ff7f0e", alpha=0.2, label="80% interval")
    if len(anomalies) and len(history):
        shown = anomalies[pd.to_datetime(anomalies["day"]) >= history["day"].min()]
        for direction, marker, color in (("spike", "^", "#2ca02c"), ("drop", "v", "#d62728")):
            points = shown[shown["direction"] == direction]
            if points.empty:
                continue
            ax.scatter(pd.to_datetime(points["day"]), points["actual"], marker=marker, s=60, color=color,
                       zorder=3, label=f"{direction}s")
    ax.set_title("Daily revenue: last 180 days and 30-day forecast")
    ax.set_xlabel("date (UTC)")
    ax.set_ylabel("revenue (currency units)")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=5, fontsize=8, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
