"""The tables' columns as schema.sql creates them, read from the DDL itself, so what the UI shows as a table's schema
(assets/metadata.py) can never drift from the real table."""

import re
from functools import cache
from importlib import resources
from typing import NamedTuple

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS analytics\.(\w+) \((.*?)\n\)(?: PARTITION BY [^;]*)?;", re.S)
_COLUMN = re.compile(r"^\s{4}(\w+)\s+([a-z]+(?: precision)?(?:\(\d+, \d+\))?(?:\[\])?)(.*?),?$")


class Column(NamedTuple):
    name: str
    type: str
    nullable: bool


@cache
def _tables(ddl_file: str = "schema.sql") -> dict[str, tuple[Column, ...]]:
    ddl = resources.files("analytics_pipeline.warehouse").joinpath(ddl_file).read_text()
    tables = {}
    for name, body in _TABLE.findall(ddl):
        found = []
        for line in body.splitlines():
            match = _COLUMN.match(line)
            if match and match.group(1) != "PRIMARY":
                column, type_, rest = match.groups()
                found.append(Column(column, type_, nullable=not re.search("NOT NULL|PRIMARY KEY", rest)))
        tables[name] = tuple(found)
    return tables


def table_names() -> tuple[str, ...]:
    """Every table of the contract, in the order schema.sql creates them."""
    return tuple(_tables())


def columns(table: str, ddl_file: str = "schema.sql") -> tuple[Column, ...]:
    """The columns of ``analytics.<table>`` as the DDL file that creates it declares them (schema.sql, or a file an
    asset applies itself, such as findings.sql)."""
    return _tables(ddl_file)[table]
