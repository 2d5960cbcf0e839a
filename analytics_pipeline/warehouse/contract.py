"""Asset metadata derived from schema.sql, so the UI's table schema can never drift from the real table."""

import re
from functools import cache
from importlib import resources

import dagster as dg

from analytics_pipeline.warehouse.db import SCHEMA

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS analytics\.(\w+) \((.*?)\n\)(?: PARTITION BY [^;]*)?;", re.S)
_COLUMN = re.compile(r"^\s{4}(\w+)\s+([a-z]+(?: precision)?(?:\(\d+, \d+\))?(?:\[\])?)(.*?),?$")


@cache
def _tables(ddl_file: str = "schema.sql") -> dict[str, dg.TableSchema]:
    ddl = resources.files("analytics_pipeline.warehouse").joinpath(ddl_file).read_text()
    tables = {}
    for name, body in _TABLE.findall(ddl):
        columns = []
        for line in body.splitlines():
            match = _COLUMN.match(line)
            if match and match.group(1) != "PRIMARY":
                column, type_, rest = match.groups()
                columns.append(
                    dg.TableColumn(
                        column,
                        type_,
                        constraints=dg.TableColumnConstraints(nullable=not re.search("NOT NULL|PRIMARY KEY", rest)),
                    )
                )
        tables[name] = dg.TableSchema(columns=columns)
    return tables


def table_names() -> tuple[str, ...]:
    """Every table of the contract, in the order schema.sql creates them."""
    return tuple(_tables())


def table_metadata(table: str, ddl_file: str = "schema.sql") -> dict:
    """Definition metadata for an asset stored in ``analytics.<table>``: its name and column schema, from the DDL
    file that creates it (schema.sql, or a file an asset applies itself, such as findings.sql)."""
    return {
        "dagster/table_name": f"{SCHEMA}.{table}",
        "dagster/column_schema": _tables(ddl_file)[table],
    }
