"""How the assets show what the warehouse tells them: the one place plain results become Dagster metadata.

The warehouse and ingestion layers return plain data (rows, counts, Markdown text); every asset turns it into what
the UI shows through these helpers, so a table's schema or a load's summary looks the same on every asset.
"""

import dagster as dg

from analytics_pipeline.warehouse import contract
from analytics_pipeline.warehouse.canonical import LoadSummary
from analytics_pipeline.warehouse.db import SCHEMA


def table_metadata(table: str, ddl_file: str = "schema.sql") -> dict:
    """Definition metadata for an asset stored in ``analytics.<table>``: its name and column schema, from the DDL
    file that creates it."""
    return {
        "dagster/table_name": f"{SCHEMA}.{table}",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(column.name, column.type, constraints=dg.TableColumnConstraints(column.nullable))
                for column in contract.columns(table, ddl_file)
            ]
        ),
    }


def load_metadata(summary: LoadSummary) -> dict:
    """What every loading asset reports; the refresh sensor reads first_day/last_day."""
    return {
        "preview": dg.MetadataValue.md(summary.preview),
        "dagster/row_count": summary.rows_loaded,
        "rows_read": summary.rows_read,
        "rows_rejected": summary.rows_rejected,
        "duplicate_rows": summary.duplicate_rows,
        "rows_typed_on_the_way": summary.rows_typed_on_the_way,
        "first_day": str(summary.first_day) if summary.first_day else "",
        "last_day": str(summary.last_day) if summary.last_day else "",
        "rejection_reasons": dg.MetadataValue.md(
            summary.reasons.to_markdown(index=False) if len(summary.reasons) else "none"
        ),
    }
