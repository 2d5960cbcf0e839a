"""Where the project keeps its files.

Everything a run reads or writes on disk lives under one data directory (``data/`` in the checkout, or
``ANALYTICS_DATA_DIR``) so a deployment mounts a single volume and tests point the whole project at a temp dir.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "ANALYTICS_DATA_DIR"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data").resolve()


def uploads_dir() -> Path:
    return data_dir() / "uploads"


def archive_dir() -> Path:
    return data_dir() / "archive"


def quarantine_dir() -> Path:
    return data_dir() / "quarantine"


def reports_dir() -> Path:
    return data_dir() / "reports"


def sample_dir() -> Path:
    """Bundled sample files; they ship with the checkout, not with a data dir a user points elsewhere."""
    return PROJECT_ROOT / "data" / "sample"


def embedded_pgdata() -> Path:
    return data_dir() / "postgres"


def dagster_home() -> Path:
    return data_dir() / "dagster_home"
