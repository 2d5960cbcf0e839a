"""Markdown for the UI's metadata that is safe to fill with what files say.

Product names, regions, raw lines and reasons come from uploaded files; the UI renders `MetadataValue.md` as
Markdown, so a value like ``[click](https://evil)``, ``![x](https://tracker)``, ``<img src=x onerror=...>`` or a cell
holding ``|`` and line breaks would become a link, a fetched image, HTML or a broken table. Every piece of file text
goes through `escape` (one line, bounded) or `escape_text` (paragraphs kept) before it is put into Markdown, and
frames through `table`.
"""

import re

import pandas as pd

MAX_CELL_CHARS = 80  # a preview shows what a value looks like; the table in Postgres holds all of it
ELLIPSIS = "…"
# Characters with a meaning in Markdown (emphasis, code, links and images, tables, strikethrough, headings) are
# backslash-escaped; those with a meaning in HTML become entities, which Markdown shows as the characters. An
# underscore inside a word (order_id) emphasises nothing, so it stays as it is.
_MARKDOWN = re.compile(r"([\\`*\[\]|~!#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Line breaks and other control or separator characters end a table row or a paragraph.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _escape_line(line: str) -> str:
    line = "".join(_HTML.get(char, char) for char in line)
    return _MARKDOWN.sub(r"\\\1", line)


def escape(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """One value as inert Markdown on one line, cut to ``limit`` characters (before escaping, so no escape is cut)."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    text = _BREAKS.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return _escape_line(text)


def escape_text(text: str) -> str:
    """Several lines of text (a narrative) as inert Markdown, its line breaks kept."""
    return "\n".join(_escape_line(_BREAKS.sub(" ", line)) for line in text.splitlines())


def table(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table with every header and cell escaped and bounded; numbers align right."""
    header = [escape(column) for column in frame.columns]
    rule = ["---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in frame.dtypes]
    rows = [[escape(value) for value in row] for row in frame.itertuples(index=False, name=None)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *rows])
