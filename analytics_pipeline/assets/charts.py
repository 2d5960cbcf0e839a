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
from analytics_pipeline.analysis.forecast import HORIZON_DAYS, INTERVAL, MIN_FORECAST_DAYS
from analytics_pipeline.analysis.history import STATUS_KEY, shortage, status
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.ingestion.files import sanitised_name
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import markdown, series
from analytics_pipeline.warehouse.db import fetch_frame

HISTORY_DAYS = 180
_PREFIX = "revenue_"  # every chart this asset draws, so a run can remove the ones it no longer draws
INLINE_REGIONS = 3  # the biggest regions are embedded in the metadata too; every chart is on disk and in Postgres

_ANOMALIES = """
SELECT segment, day, actual, direction FROM analytics.metric_anomalies WHERE metric = 'revenue' ORDER BY day
"""
_INSERT = """
INSERT INTO analytics.charts (chart, path, png, generated_at) VALUES (:chart, :path, :png, :generated_at)
"""


@dg.asset(
    deps=["daily_metrics", "daily_region_metrics", "revenue_forecast", "metric_anomalies"],
    group_name="reporting",
    kinds={"postgres", "matplotlib"},
    owners=["team:analytics"],
    pool="warehouse",
    metadata=table_metadata("charts"),
    description=(
        f"PNG charts of daily revenue over the last {HISTORY_DAYS} days with the {HORIZON_DAYS}-day forecast and its "
        f"{INTERVAL:.0%} band, spikes and drops marked: one overall (`revenue_overview`) and one per region "
        "(`revenue_<region>`). Saved under data/reports/ and in `analytics.charts` (every run replaces them all); the "
        "overall chart and the biggest regions' are shown inline in this asset's metadata. Under "
        f"{MIN_FORECAST_DAYS} days of history (no forecast band) or with no positive revenue, `{STATUS_KEY}` says "
        "'not enough data' and why; with no history the overall chart just says 'no data yet'."
    ),
)
def revenue_chart(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        histories = {series.TOTAL: series.total_series(conn)}
        histories |= {name: frame for name, frame in series.region_series(conn).groupby("segment")}
        forecasts = series.forecasts(conn)
        anomalies = fetch_frame(conn, _ANOMALIES)
    charts = []
    for segment, history in histories.items():
        title = "all regions" if segment == series.TOTAL else segment
        png = _render(
            title,
            history.tail(HISTORY_DAYS),
            forecasts[forecasts["segment"] == segment],
            anomalies[anomalies["segment"] == segment],
        )
        name = f"{_PREFIX}overview" if segment == series.TOTAL else f"{_PREFIX}{sanitised_name(segment)}"
        charts.append((segment, name, png, float(history["revenue"].tail(HISTORY_DAYS).sum())))

    folder = paths.reports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    generated_at = datetime.now(UTC)
    current = {f"{name}.png" for _, name, _, _ in charts}
    for stale in folder.glob(f"{_PREFIX}*.png"):  # e.g. a region no longer in the data
        if stale.name not in current:
            stale.unlink()
    with warehouse.transaction() as conn:
        conn.execute(sa.text("DELETE FROM analytics.charts"))
        for _, name, png, _ in charts:
            (folder / f"{name}.png").write_bytes(png)
            conn.execute(
                sa.text(_INSERT),
                {"chart": name, "path": str(folder / f"{name}.png"), "png": png, "generated_at": generated_at},
            )
    overall, *regions = charts
    biggest = sorted(regions, key=lambda chart: -chart[3])[:INLINE_REGIONS]
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(shortage(histories[series.TOTAL], MIN_FORECAST_DAYS, "the forecast band")),
            "path": dg.MetadataValue.path(str(folder / f"{overall[1]}.png")),
            "chart": dg.MetadataValue.md(_inline("daily revenue with forecast", overall[2])),
            "biggest_regions": dg.MetadataValue.md(
                "\n\n".join(f"**{markdown.escape(c[0])}**\n\n{_inline(markdown.escape(c[0]), c[2])}" for c in biggest)
            ),
            "charts": dg.MetadataValue.md("\n".join(f"- `{c[1]}`: {folder / (c[1] + '.png')}" for c in charts)),
            "dagster/row_count": len(charts),
            "history_days": min(HISTORY_DAYS, len(histories[series.TOTAL])),
        }
    )


def _inline(title: str, png: bytes) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _render(title: str, history: pd.DataFrame, forecast: pd.DataFrame, anomalies: pd.DataFrame) -> bytes:
    """Figure without pyplot: no global state and no GUI backend, which matters in run workers and servers."""
    fig = Figure(figsize=(11, 4.5), dpi=100)
    ax = fig.subplots()
    if history.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center", fontsize=20, color="grey")
        ax.set_title(f"Daily revenue, {title}")
        return _png(fig)
    few = len(history) < MIN_FORECAST_DAYS  # dots, or a lone day would not show
    ax.plot(history["day"], history["revenue"], color="#1f77b4", linewidth=1.2, marker="o" if few else None,
            label="revenue")
    if few and forecast.empty:  # a day either side, not matplotlib's years around a single date
        ax.set_xlim(history["day"].min() - pd.Timedelta(days=1), history["day"].max() + pd.Timedelta(days=1))
        ax.xaxis.set_major_locator(mdates.DayLocator())
    if len(forecast):
        days = forecast["day"]
        ax.plot(days, forecast["predicted"], color="#ff7f0e", linestyle="--", linewidth=1.4, label="forecast")
        ax.fill_between(
            days, forecast["lower"], forecast["upper"], color="#ff7f0e", alpha=0.2, label=f"{INTERVAL:.0%} interval"
        )
    if len(anomalies) and len(history):
        shown = anomalies[pd.to_datetime(anomalies["day"]) >= history["day"].min()]
        for direction, marker, color in (("spike", "^", "#2ca02c"), ("drop", "v", "#d62728")):
            points = shown[shown["direction"] == direction]
            if points.empty:
                continue
            ax.scatter(pd.to_datetime(points["day"]), points["actual"], marker=marker, s=60, color=color,
                       zorder=3, label=f"{direction}s")
    shown = f"last {len(history)} day{'s' if len(history) > 1 else ''}"
    ahead = f"{len(forecast)}-day forecast" if len(forecast) else "no forecast yet"
    ax.set_title(f"Daily revenue, {title}: {shown} and {ahead}")
    ax.set_xlabel("date (UTC)")
    ax.set_ylabel("revenue (currency units)")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=5, fontsize=8, frameon=False)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
