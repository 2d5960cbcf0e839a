"""Rows pulled from a database or an API, turned into the same canonical text batches as a file's lines.

A source yields pages of rows (mappings of column -> value) together with the highest watermark seen so far. Values
become text here, as a JSON-lines file's values do, and are typed later in SQL by warehouse.canonical exactly as a
CSV's are, so a database amount and an uploaded amount are accepted or rejected by the same rule.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from analytics_pipeline.ingestion.columns import ColumnMapping, map_columns
from analytics_pipeline.ingestion.reader import as_text, canonical_batch


@dataclass
class Page:
    """One fetch from a source: its rows, and the source's watermark after them."""

    rows: list[Mapping[str, Any]]
    watermark: str | None


@dataclass
class Pull:
    """What one incremental read learnt while it streamed: rows and pages read, the watermark reached, the mapping.

    Rows are numbered from 1 in the order the source returned them; the number is the `source_line` of a loaded row
    and the `line_number` of a rejected one.
    """

    since: str | None
    overrides: Mapping[str, str]
    watermark: str | None = field(init=False)  # starts at `since`, moves as pages arrive
    rows_read: int = 0
    pages: int = 0
    mapping: ColumnMapping | None = None

    def __post_init__(self) -> None:
        self.watermark = self.since

    def batches(self, pages: Iterable[Page], key: str) -> Iterator[pa.Table]:
        """Canonical batches for warehouse.canonical.stage; the columns are mapped from the first non-empty page."""
        for page in pages:
            self.pages += 1
            self.watermark = page.watermark
            if not page.rows:
                continue
            if self.mapping is None:
                header = list(dict.fromkeys(column for row in page.rows for column in row))
                self.mapping = map_columns(header, self.overrides)
            needed = dict.fromkeys(self.mapping.source_columns.values())
            table = pa.table({c: pa.array([as_text(r.get(c)) for r in page.rows], pa.string()) for c in needed})
            first = self.rows_read + 1
            self.rows_read += len(page.rows)
            yield canonical_batch(table, key, np.arange(first, self.rows_read + 1), self.mapping)
