"""The file registry (`analytics.ingested_files`): every state an uploaded file can be in, and every move between them.

    (dropped) --raw_uploads--> STAGED --transactions--> LOADED --a newer version loads--> REPLACED
        |                         |
        +-------------------------+----> QUARANTINED  (unreadable, unmappable, too many bad rows, or any other error
                                                      that is the file's fault; the reason says which)

Each transition is one statement run inside the caller's transaction, and the file on disk moves only after that
transaction commits (`files.settle`). A process killed in between leaves the registry ahead of the disk, never behind:
the sensor finds the file still in the watched folder, sees from the registry where it belongs, and moves it there.
"""

import json
from enum import StrEnum

import sqlalchemy as sa

from analytics_pipeline.warehouse import canonical


class FileStatus(StrEnum):
    STAGED = "staged"  # its rows are in raw_uploads; the file is still in the watched folder
    LOADED = "loaded"  # its rows are in transactions; the file belongs in the archive
    QUARANTINED = "quarantined"  # nothing of it is loaded; the file belongs in the quarantine folder, with its reason
    REPLACED = "replaced"  # a newer version of the same name loaded and replaced its rows


_UPSERT = """
INSERT INTO analytics.ingested_files
    (file_key, file_name, content_hash, size_bytes, path, status, columns_seen, column_mapping, rows_read,
     duplicate_rows, reason, run_id, received_at)
VALUES (:file_key, :file_name, :content_hash, :size_bytes, :path, :status, :columns_seen,
        CAST(:column_mapping AS jsonb), :rows_read, :duplicate_rows, :reason, :run_id, now())
ON CONFLICT (file_key) DO UPDATE SET
    path = EXCLUDED.path, status = EXCLUDED.status, columns_seen = EXCLUDED.columns_seen,
    column_mapping = EXCLUDED.column_mapping, rows_read = EXCLUDED.rows_read, reason = EXCLUDED.reason,
    run_id = EXCLUDED.run_id, rows_loaded = NULL, rows_rejected = NULL, duplicate_rows = EXCLUDED.duplicate_rows,
    first_day = NULL, last_day = NULL, loaded_at = NULL
"""

_LOADED = """
UPDATE analytics.ingested_files
SET status = :status, reason = :reason, path = :path, rows_loaded = :rows_loaded, rows_rejected = :rows_rejected,
    duplicate_rows = :duplicate_rows, first_day = :first_day, last_day = :last_day, loaded_at = now()
WHERE file_key = :file_key
"""

_REPLACED = "UPDATE analytics.ingested_files SET status = :status, reason = :reason WHERE file_key = :file_key"

_FILE = """
SELECT file_name, path, status, received_at, rows_read, duplicate_rows FROM analytics.ingested_files
WHERE file_key = :file_key
"""

# Versions of the same file name that hold rows now: a newer one replaces an older one's, whatever order runs happen in.
_OTHER_VERSIONS = """
SELECT file_key, received_at > :received_at AS newer, first_day, last_day
FROM analytics.ingested_files
WHERE file_name = :file_name AND file_key <> :file_key AND status IN ('staged', 'loaded')
"""

_STATUS_OF = "SELECT file_key, status, path, content_hash FROM analytics.ingested_files WHERE file_key = ANY(:keys)"

_LOADED_CONTENT = """
SELECT content_hash, file_key FROM analytics.ingested_files WHERE content_hash = ANY(:hashes) AND status = 'loaded'
"""


def staged(
    conn: sa.Connection, facts: dict, path: str, columns_seen: list[str], mapping: dict, rows_read: int,
    duplicate_rows: int | None = None,
) -> None:
    """The file's rows are staged (canonical.stage). `facts`: file_key, file_name, content_hash, size_bytes, run_id.
    `duplicate_rows`: for a big file, the earlier copies of repeated ids that staging already dropped."""
    conn.execute(
        sa.text(_UPSERT),
        {**facts, "path": path, "status": FileStatus.STAGED, "columns_seen": columns_seen,
         "column_mapping": json.dumps(mapping), "rows_read": rows_read, "duplicate_rows": duplicate_rows,
         "reason": None},
    )


def quarantined(conn: sa.Connection, facts: dict, path: str, reason: str) -> None:
    """Nothing of the file is loaded (its staged rows go too); it belongs at `path` in the quarantine folder."""
    canonical.discard(conn, facts["file_key"])
    conn.execute(
        sa.text(_UPSERT),
        {**facts, "path": path, "status": FileStatus.QUARANTINED, "columns_seen": None, "column_mapping": None,
         "rows_read": 0, "duplicate_rows": None, "reason": reason},
    )


def promoted(conn: sa.Connection, key: str, status: FileStatus, path: str, reason: str | None, **counts) -> None:
    """The outcome of typing the staged rows: LOADED (with counts and days) or QUARANTINED (too many bad rows)."""
    conn.execute(sa.text(_LOADED), {"file_key": key, "status": status, "reason": reason, "path": path, **counts})


def replaced(conn: sa.Connection, key: str, reason: str) -> None:
    """A newer version of the name holds the rows now: this version's transactions go."""
    canonical.remove(conn, key)
    conn.execute(sa.text(_REPLACED), {"file_key": key, "status": FileStatus.REPLACED, "reason": reason})


def file_row(conn: sa.Connection, key: str) -> dict | None:
    row = conn.execute(sa.text(_FILE), {"file_key": key}).mappings().one_or_none()
    return dict(row) if row else None


def other_versions(conn: sa.Connection, key: str, file_name: str, received_at) -> list[dict]:
    rows = conn.execute(
        sa.text(_OTHER_VERSIONS), {"file_key": key, "file_name": file_name, "received_at": received_at}
    ).mappings()
    return [dict(row) for row in rows]


def statuses(conn: sa.Connection, keys: list[str]) -> dict[str, dict]:
    """file_key -> its registry row (status, path, content_hash), for the keys that have one."""
    if not keys:
        return {}
    return {row["file_key"]: dict(row) for row in conn.execute(sa.text(_STATUS_OF), {"keys": keys}).mappings()}


def loaded_content(conn: sa.Connection, hashes: list[str]) -> dict[str, str]:
    """content hash -> the key that LOADED those bytes. Only loaded ones count: a quarantined or replaced version
    dropped again (say after the mapping file was fixed) is loaded again."""
    if not hashes:
        return {}
    return dict(conn.execute(sa.text(_LOADED_CONTENT), {"hashes": hashes}).all())


_REQUESTED = """
INSERT INTO analytics.upload_requests (file_key, batch) VALUES (:file_key, :batch)
ON CONFLICT (file_key) DO UPDATE SET batch = EXCLUDED.batch, requested_at = now()
"""


def requested(conn: sa.Connection, batches: dict[str, str]) -> None:
    """The sensor asked for a run of each file: file_key -> the batch (the run's `upload/batch` tag)."""
    if batches:
        conn.execute(sa.text(_REQUESTED), [{"file_key": key, "batch": batch} for key, batch in batches.items()])


def batches(conn: sa.Connection, keys: list[str]) -> dict[str, str]:
    """file_key -> the batch its last run was requested in, for the keys that were requested."""
    if not keys:
        return {}
    found = conn.execute(
        sa.text("SELECT file_key, batch FROM analytics.upload_requests WHERE file_key = ANY(:keys)"), {"keys": keys}
    )
    return dict(found.all())
