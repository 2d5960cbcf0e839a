"""`analytics demo` end to end, as a user runs it: a new data directory, the real CLI, a real Postgres."""

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.warehouse import server
from analytics_pipeline_tests.conftest import ANALYTICS_TABLES, scratch_database

ANALYTICS = str(Path(sys.executable).parent / "analytics")

# Run in the demo's environment: every asset key of the Definitions -> its latest materialisation's status and row
# count, read from the instance the demo (and the UI) use, through Dagster's own API.
LATEST_MATERIALISATIONS = """
import json
import dagster as dg
from analytics_pipeline.definitions import defs
with dg.DagsterInstance.get() as instance:
    latest = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        event = instance.get_latest_materialization_event(key)
        metadata = event.asset_materialization.metadata if event else None
        latest[key.to_user_string()] = metadata and {
            name: metadata[name].value for name in ("status", "dagster/row_count") if name in metadata
        }
print(json.dumps(latest))
"""


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYTICS, *args], env=env, capture_output=True, text=True, timeout=900)


def test_demo_on_an_empty_data_directory_fills_every_table(data_dir):
    configured = server.configured_url()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", server.DATABASE_URL_ENV)}
    demo_dir = data_dir / "demo"  # a data directory of its own, with nothing in it
    env["ANALYTICS_DATA_DIR"] = str(demo_dir)
    # With a configured server the demo gets a scratch database there; otherwise it starts its own embedded one.
    with scratch_database(configured) if configured else nullcontext() as url:
        if url:
            env[server.DATABASE_URL_ENV] = url
        try:
            demo = _run(["demo"], env)
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
            assert "copied 3 sample files" in demo.stdout
            assert "Summary" in demo.stdout and "forecast horizon: 30 days" in demo.stdout
            assert f"chart: {demo_dir / 'reports' / 'revenue_overview.png'} (all regions; " in demo.stdout

            db_url = _run(["db"], env).stdout.strip()
            assert db_url.startswith("postgresql://")
            engine = sa.create_engine(urls.psycopg2_url(db_url))
            with engine.connect() as conn:
                counts = {
                    t: conn.execute(sa.text(f"SELECT count(*) FROM analytics.{t}")).scalar_one()
                    for t in ANALYTICS_TABLES
                }
                runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
            engine.dispose()
            # The demo loads files only: no database or API source is configured, so no watermark is stored.
            assert counts.pop("source_watermarks") == 0
            # Nor a sensor request: the demo loads the files itself, as `analytics dev`'s upload sensor would.
            assert counts.pop("upload_requests") == 0
            assert all(count > 0 for count in counts.values()), counts
            assert runs == 6  # three file loads, the two source pulls and one refresh, stored where the UI reads them

            # Every asset of the graph has a materialisation, so nothing in the UI waits on a never-run upstream;
            # the unconfigured sources say so and count no rows.
            env["DAGSTER_HOME"] = str(demo_dir / "dagster_home")
            read = subprocess.run(
                [sys.executable, "-c", LATEST_MATERIALISATIONS], env=env, capture_output=True, text=True, timeout=300
            )
            assert read.returncode == 0, read.stderr[-3000:]
            latest = json.loads(read.stdout.strip().splitlines()[-1])
            assert latest and all(m is not None for m in latest.values()), latest
            for source, variable in (
                ("database_transactions", "ANALYTICS_SOURCE_DATABASE_URL"),
                ("api_transactions", "ANALYTICS_SOURCE_API_BASE_URL"),
            ):
                expected = f"not configured (set {variable}): nothing pulled"
                assert latest[source] == {"status": expected, "dagster/row_count": 0}
                assert f"  {source}: {expected} (0 rows)" in demo.stdout
            assert (demo_dir / "dagster_home" / "dagster.yaml").exists()
            assert (demo_dir / "reports" / "revenue_overview.png").exists()
        finally:
            if not url:
                stopped = _run(["stop"], env)
                assert "stopped the embedded Postgres" in stopped.stdout
