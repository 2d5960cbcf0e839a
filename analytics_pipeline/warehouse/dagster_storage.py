"""Dagster's run, event and schedule storage, kept in the warehouse Postgres.

dagster.yaml names this class instead of a ``postgres_url`` so that the one rule for finding the database -
``ANALYTICS_DATABASE_URL``, else the embedded server - also holds for Dagster itself, in every process (webserver,
daemon, run workers, and any ``dagster`` command run from the project root), with nothing else to export.
"""

# The type of the inst_data argument of ConfigurableClass.from_config_value, which Dagster exports only from here.
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage

from analytics_pipeline import urls
from analytics_pipeline.warehouse import server

# dagster-postgres opens a new connection for every event it stores, except in the webserver. A run over many
# partitions stores a few events per partition and asset, and the connections cost more than the inserts: a run over
# 240 month partitions of 4 assets took 39 s with a connection per event and 16 s with a pooled one. Every process
# therefore keeps one connection open per storage, as the webserver does, and opens overflow connections only for
# concurrent threads (the daemon's); they close when returned.
POOL_RECYCLE_SECONDS = 3600
POOL_MAX_OVERFLOW = 20
NO_STATEMENT_TIMEOUT = 0  # Postgres's own default; runs may legitimately wait on a long query


class WarehouseDagsterStorage(DagsterPostgresStorage):
    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> "WarehouseDagsterStorage":
        storage = cls(postgres_url=urls.psycopg2_url(server.database_url()), inst_data=inst_data)
        # The storages' public hook for a pooled engine; named for the webserver, which calls it again with its own
        # settings, but nothing in it is specific to the webserver.
        for part in (storage.event_log_storage, storage.run_storage, storage.schedule_storage):
            part.optimize_for_webserver(
                statement_timeout=NO_STATEMENT_TIMEOUT,
                pool_recycle=POOL_RECYCLE_SECONDS,
                max_overflow=POOL_MAX_OVERFLOW,
            )
        return storage
