"""Disk and registry agree: every registered file is where its status says, and no file sits where nothing knows it.

The registry commits first and the file moves after (registry.py), so a crash can only leave the disk behind the
registry; older versions of the project moved files before committing and could leave a file in the archive with
no registry row at all. `stranded` lists both kinds and `repair` puts each file where it belongs: a registered file
goes to its recorded place, an unregistered one goes back to the watched folder, where the sensor loads it. Nothing
is ever deleted. `analytics doctor` and the `files_where_registered` check of raw_uploads run it.
"""

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.bucket import Bucket
from analytics_pipeline.resources import Location
from analytics_pipeline.warehouse.registry import FileStatus

_REGISTERED = "SELECT file_key, file_name, status, path FROM analytics.ingested_files"

# Where each status keeps its file; STAGED files are still in the watched folder, being loaded.
_HOME = {FileStatus.LOADED: "archive", FileStatus.REPLACED: "archive", FileStatus.QUARANTINED: "quarantine"}


@dataclass(frozen=True)
class Stranded:
    path: Path | str  # where the file is now (a path, or an object's s3:// URL)
    target: Path | str  # where it belongs
    why: str


def stranded(conn: sa.Connection, uploads: Path, archive: Path, quarantine: Path) -> list[Stranded]:
    folders = {"archive": archive, "quarantine": quarantine}
    registered = conn.execute(sa.text(_REGISTERED)).mappings().all()
    found = []
    known_keys = set()
    for row in registered:
        known_keys.add(row["file_key"])
        home = _HOME.get(FileStatus(row["status"]))
        recorded = Path(row["path"])
        if home is None or recorded.exists() or recorded.is_symlink():
            continue
        name = recorded.name
        for candidate in (uploads / name, archive / row["file_key"] / name, quarantine / row["file_key"] / name):
            if (candidate.exists() or candidate.is_symlink()) and candidate != recorded:
                target = folders[home] / row["file_key"] / name
                found.append(Stranded(candidate, target, f"{row['status']} file not in the {home}"))
                break
    for folder in (archive, quarantine):
        for key_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            if key_dir.name in known_keys:
                continue
            for path in sorted(key_dir.iterdir()):
                if path.name.endswith(files.REASON) or path.name == files.REASON.lstrip("."):
                    continue
                found.append(Stranded(path, uploads / path.name, f"in the {folder.name} with no registry row"))
    return found


def stranded_objects(conn: sa.Connection, bucket: Bucket) -> list[Stranded]:
    """`stranded` for a bucket, from one listing of the uploads and of each of the archive and quarantine prefixes."""
    present = {bucket.url(item["Key"]) for item in bucket.objects(bucket.prefix, delimiter=True)}
    filed: dict[str, set[str]] = {}  # key -> URLs under archive/<key>/ and quarantine/<key>/
    for prefix in bucket.areas.values():
        for item in bucket.objects(prefix):
            key, _, name = item["Key"][len(prefix):].partition("/")
            if name and not name.endswith(files.REASON) and name != files.REASON.lstrip("."):
                filed.setdefault(key, set()).add(bucket.url(item["Key"]))
                present.add(bucket.url(item["Key"]))
    found = []
    for row in conn.execute(sa.text(_REGISTERED)).mappings():
        home = _HOME.get(FileStatus(row["status"]))
        filed.pop(row["file_key"], None)
        if home is None or row["path"] in present or not row["path"].startswith("s3://"):
            continue
        target = bucket.destination(home, row["file_key"], row["path"])
        for candidate in (f"{bucket}{row['path'].rpartition('/')[2]}",
                          *(bucket.destination(area, row["file_key"], row["path"]) for area in bucket.areas)):
            if candidate in present and candidate != row["path"]:
                found.append(Stranded(candidate, target, f"{row['status']} file not in the {home}"))
                break
    for _, urls in sorted(filed.items()):
        found += [Stranded(url, f"{bucket}{url.rpartition('/')[2]}", "filed under a key with no registry row")
                  for url in sorted(urls)]
    return found


def at(conn: sa.Connection, location: Location) -> list[Stranded]:
    if isinstance(location, Bucket):
        return stranded_objects(conn, location)
    return stranded(conn, location.uploads, location.archive_folder, location.quarantine_folder)


def repair(found: list[Stranded], location: Location | None = None) -> list[str]:
    """Move each stranded file where it belongs; returns what was done, a line each. A file whose target is taken
    stays where it is and is reported."""
    done = []
    bucket = location if isinstance(location, Bucket) else None
    for item in found:
        if bucket.exists(str(item.target)) if bucket else item.target.exists():
            done.append(f"left {item.path}: {item.target} already exists ({item.why})")
            continue
        if bucket:
            bucket.move(str(item.path), str(item.target))
        else:
            item.target.parent.mkdir(parents=True, exist_ok=True)
            item.path.rename(item.target)
        done.append(f"moved {item.path} -> {item.target} ({item.why})")
    return done
