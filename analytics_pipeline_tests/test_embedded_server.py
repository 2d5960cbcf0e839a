"""The embedded PostgreSQL runs with settings sized from the machine; a server named by URL is never reconfigured."""

import pytest
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.warehouse import server

GiB = 1 << 30


@pytest.mark.parametrize(
    ("ram", "cores", "expected"),
    [
        (512 << 20, 1, {"shared_buffers": "128MB", "work_mem": "4MB", "maintenance_work_mem": "64MB",
                        "max_parallel_workers_per_gather": "2"}),
        (8 * GiB, 2, {"shared_buffers": "1024MB", "work_mem": "32MB", "maintenance_work_mem": "512MB",
                      "max_parallel_workers_per_gather": "2"}),
        (256 * GiB, 64, {"shared_buffers": "4096MB", "work_mem": "64MB", "maintenance_work_mem": "1024MB",
                         "max_parallel_workers_per_gather": "4", "max_parallel_workers": "64"}),
    ],
)
def test_settings_are_sized_from_ram_and_cores_within_bounds(ram, cores, expected):
    settings = server.embedded_settings(ram_bytes=ram, cores=cores)
    assert {name: settings[name] for name in expected} == expected
    assert settings["wal_level"] == "minimal" and settings["max_wal_senders"] == "0"


def test_the_embedded_server_runs_with_them(warehouse_url):
    if server.configured_url():
        pytest.skip("the tests run against ANALYTICS_DATABASE_URL, whose settings are its owner's")
    engine = sa.create_engine(urls.psycopg2_url(warehouse_url))
    try:
        with engine.connect() as conn:
            for name, value in server.embedded_settings().items():
                shown = conn.execute(sa.text("SELECT current_setting(:name)"), {"name": name}).scalar_one()
                if value.endswith("B"):  # 1024MB is shown as 1GB
                    shown, value = (
                        conn.execute(sa.text("SELECT pg_size_bytes(:v)"), {"v": v}).scalar_one() for v in (shown, value)
                    )
                assert shown == value, name
    finally:
        engine.dispose()


def test_a_server_named_by_url_is_used_as_it_is(monkeypatch):
    def embedded():
        raise AssertionError("the embedded server was started or tuned")

    monkeypatch.setenv(server.DATABASE_URL_ENV, "postgresql://someone@db.example.com/analytics")
    monkeypatch.setattr(server, "_embedded_server", embedded)
    monkeypatch.setattr(server, "_write_settings", embedded)
    assert server.database_url() == "postgresql://someone@db.example.com/analytics"
