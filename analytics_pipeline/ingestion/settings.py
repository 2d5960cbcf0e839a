"""Per-file settings from the declarative mapping file (data/column_mappings.toml).

Most exports load with no configuration at all; the mapping file is for the rest: a header nobody could guess, a
day-first date style, a local time zone, a different cancellation marker. Each ``[[files]]`` entry applies to the
file names its glob ``pattern`` matches; the first match wins, and ``[defaults]`` fills what an entry leaves out.
"""

import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics_pipeline import paths

MAPPINGS_ENV = "ANALYTICS_COLUMN_MAPPINGS"


class MappingFileError(ValueError):
    """The mapping file cannot be used as written."""


@dataclass(frozen=True)
class FileSettings:
    columns: dict[str, str] = field(default_factory=dict)  # canonical field -> the file's column
    day_first: bool = False  # 03/04/2026 is 3 April, not 4 March
    timezone: str = "UTC"  # zone for timestamps that carry none
    # order ids matching this are cancellations ("C536379", "C-4"; not "CA-2016")
    cancellation_pattern: str = "^C[0-9-]"
    max_rejected_share: float = 0.5  # above this share of bad rows the whole file is quarantined
    # Rows dated (in UTC) outside these days are rejected: a year 1 or 9999 is a typo or a placeholder, not a sale,
    # and beyond what the daily tables' partitions and Python's dates can hold.
    min_date: date = date(1900, 1, 1)
    max_date: date = date(2100, 12, 31)
    pattern: str | None = None  # the entry that matched, for the UI


def mappings_file() -> Path:
    return Path(os.environ.get(MAPPINGS_ENV) or paths.data_dir() / "column_mappings.toml")


def settings_for(file_name: str, mapping_path: Path | None = None) -> FileSettings:
    path = mapping_path or mappings_file()
    if not path.is_file():
        return FileSettings()
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise MappingFileError(f"{path}: {error}") from error
    defaults = _settings(FileSettings(), document.get("defaults", {}), path)
    for entry in document.get("files", []):
        if "pattern" not in entry:
            raise MappingFileError(f"{path}: every [[files]] entry needs a pattern")
        if fnmatch.fnmatch(file_name.lower(), entry["pattern"].lower()):
            return _settings(defaults, entry, path)
    return defaults


def _settings(base: FileSettings, values: dict, path: Path) -> FileSettings:
    known = {f for f in FileSettings.__dataclass_fields__}
    unknown = set(values) - known
    if unknown:
        raise MappingFileError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    dates = {name: _date(values[name], name, path) for name in ("min_date", "max_date") if name in values}
    settings = replace(base, **values | dates)
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise MappingFileError(f"{path}: unknown time zone {settings.timezone!r}") from error
    if not 0 <= settings.max_rejected_share <= 1:
        raise MappingFileError(f"{path}: max_rejected_share must be between 0 and 1")
    if settings.min_date > settings.max_date:
        raise MappingFileError(f"{path}: min_date {settings.min_date} is after max_date {settings.max_date}")
    try:  # Postgres applies it; checked here (in the syntax both share) so the error names the mapping file
        re.compile(settings.cancellation_pattern)
    except (re.error, TypeError) as error:
        raise MappingFileError(
            f"{path}: invalid cancellation_pattern {settings.cancellation_pattern!r}: {error}"
        ) from error
    return settings


def _date(value, name: str, path: Path) -> date:
    """A TOML date (min_date = 1900-01-01) or the same as a string."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as error:
        raise MappingFileError(f"{path}: {name} must be a date such as 1900-01-01, not {value!r}") from error
