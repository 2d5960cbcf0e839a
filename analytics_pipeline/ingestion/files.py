"""The identity of an uploaded file and where it lives over its life: uploads -> archive or quarantine.

`Folder` is the watched location on a file system; `bucket.Bucket` is the same contract over an S3-compatible
bucket. Both hand the sensor and the assets `Entry`s and `UploadedFile`s whose ``where`` (a path, or an s3:// URL)
is what the registry records.

A file's partition key is its sanitised name plus a prefix of its content hash. Dagster partition keys may not
contain "/" or "|", and the hash makes a changed file with the same name a new partition while the same bytes
under the same name map to the partition that already exists.
"""

import hashlib
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_HASH_CHARS = 12
_MAX_STEM = 60
REASON = ".reason.txt"
EXCERPT_CHARS = 200  # what a reason may quote of a file or of an error about it
_MAX_NAME_BYTES = 255  # most file systems' limit on one name


class ChangedWhileLoading(RuntimeError):
    """The file's bytes differ after staging from what its partition key was hashed from."""


@dataclass(frozen=True)
class UploadedFile:
    name: str
    where: str  # its path, or its s3:// URL
    content_hash: str
    size_bytes: int

    @property
    def key(self) -> str:
        return partition_key(self.name, self.content_hash)


@dataclass(frozen=True)
class Entry:
    """What one listing of the watched location says of a file, before its bytes are read."""

    name: str
    where: str
    size: int
    version: str  # changes when the bytes may have: mtime in ns, or an object's ETag
    modified: float  # epoch seconds


@dataclass
class Listing:
    entries: list[Entry]
    refused: list[tuple[Entry, str]] = field(default_factory=list)  # never to be read, with the reason
    after: str | None = None  # where the next tick's listing starts; None: from the beginning
    start: str | None = None  # where this listing started

    def covers(self, name: str) -> bool:
        """Whether this listing looked at ``name``'s place (a listing of a bucket covers a window of names)."""
        return (self.start is None or name > self.start) and (self.after is None or name <= self.after)


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sanitised_name(file_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", file_name.lower()).strip("_")[:_MAX_STEM] or "file"


def partition_key(file_name: str, sha256: str) -> str:
    return f"{sanitised_name(file_name)}_{sha256[:_HASH_CHARS]}"


def describe(path: Path) -> UploadedFile:
    return UploadedFile(
        name=path.name, where=str(path), content_hash=content_hash(path), size_bytes=path.stat().st_size
    )


def is_candidate(path: Path) -> bool:
    """Visible regular files; editors' and copiers' temporary files start with a dot and are left alone. A symbolic
    link is never a candidate, whatever it points to: following one would read a file outside the folder."""
    return (
        not path.is_symlink() and path.is_file() and not path.name.startswith(".") and not path.name.endswith(REASON)
    )


def refusal(path: Path) -> str | None:
    """Why a visible entry of the watched folder can never be loaded, or None. Names the entry, never its content
    nor what a link points to. An entry gone since the folder was listed (a run moved it to the archive) is not
    refused: there is nothing left to judge."""
    if path.name.startswith("."):
        return None
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return f"{display_name(path.name)} is a symbolic link; copy the file itself into the folder"
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return f"{display_name(path.name)} is not a regular file (a device, socket or pipe)"
    return None


def display_name(name: str) -> str:
    """The name as text that survives a database and a UI: bytes that are not UTF-8 show as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of text that may quote a file, with control characters shown as escapes."""
    shown = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def locate(keys: list[str], uploads: Path, archive: Path, quarantine: Path) -> dict[str, UploadedFile]:
    """Find the files behind partition keys: in the watched folder (dropped, or dropped again after a quarantine),
    else moved under their key by an earlier run. A key with no file is left out. The watched folder is listed once
    however many keys are asked for."""
    found: dict[str, UploadedFile] = {}
    waiting: dict[str, list[Path]] = {}
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        if is_candidate(path):
            waiting.setdefault(sanitised_name(path.name), []).append(path)
    for key in keys:
        for path in waiting.get(key[: -(_HASH_CHARS + 1)], []):
            candidate = describe(path)
            if candidate.key == key:
                found[key] = candidate
                break
        for folder in (archive / key, quarantine / key):
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if key not in found and is_candidate(path):
                    found[key] = describe(path)
    return found


def destination(folder: Path, key: str, path: Path) -> Path:
    """Where a file goes in the archive or the quarantine: ``folder/<key>/<its name>``; the key folder keeps two
    versions of one name apart."""
    return folder / key / path.name


def move_into(folder: Path, key: str, path: Path) -> Path:
    """Move a file to its destination in ``folder``. A file already there (a retry after the move) stays."""
    target = destination(folder, key, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if path.absolute() != target.absolute():
            shutil.move(str(path), target)  # a symbolic link moves as a link; its target is never touched
    elif not target.exists():
        raise FileNotFoundError(f"{display_name(path.name)} is neither in the watched folder nor at {target}")
    return target


def quarantine(folder: Path, key: str, path: Path, reason: str) -> Path:
    """Move a rejected file aside with a reason file a person can read next to it (``<name>.reason.txt``, or
    ``reason.txt`` when the name is too long for another suffix)."""
    target = move_into(folder, key, path)
    reason_name = target.name + REASON
    if len(reason_name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        reason_name = REASON.lstrip(".")
    (target.parent / reason_name).write_text(reason + "\n")
    return target


class Folder:
    """The watched folder with its archive and quarantine folders on a file system (the default location)."""

    def __init__(self, uploads: Path, archive: Path, quarantine: Path):
        self.uploads, self.archive_folder, self.quarantine_folder = uploads, archive, quarantine

    def __str__(self) -> str:
        return str(self.uploads)

    def listing(self, after: str | None = None) -> Listing:
        """Every visible regular file, and the entries that can never be read (links, devices) with the reason."""
        listing = Listing(entries=[])
        for path in sorted(self.uploads.iterdir()) if self.uploads.is_dir() else []:
            reason = refusal(path)
            if reason:
                listing.refused.append((Entry(path.name, str(path), 0, "", 0.0), reason))
                continue
            if not is_candidate(path):
                continue
            try:
                info = path.stat()
            except FileNotFoundError:  # moved to the archive by a run since the folder was listed
                continue
            listing.entries.append(Entry(path.name, str(path), info.st_size, str(info.st_mtime_ns), info.st_mtime))
        return listing

    def content_hash(self, entry: Entry) -> str:
        return content_hash(Path(entry.where))

    def locate(self, keys: list[str]) -> dict[str, UploadedFile]:
        return locate(keys, self.uploads, self.archive_folder, self.quarantine_folder)

    @contextmanager
    def readable(self, upload: UploadedFile) -> Iterator[Path]:
        yield Path(upload.where)

    def check_unchanged(self, upload: UploadedFile) -> None:
        """Read again after staging: a file still being written has other bytes now, and what was staged belongs
        to no version of it."""
        if content_hash(Path(upload.where)) != upload.content_hash:
            raise ChangedWhileLoading(f"{display_name(upload.name)} changed while it was being loaded")

    def _folder(self, area: str) -> Path:
        return {"archive": self.archive_folder, "quarantine": self.quarantine_folder}[area]

    def destination(self, area: str, key: str, where: str) -> str:
        return str(destination(self._folder(area), key, Path(where)))

    def archive(self, key: str, where: str) -> str:
        return str(move_into(self.archive_folder, key, Path(where)))

    def quarantine(self, key: str, where: str, reason: str) -> str:
        return str(quarantine(self.quarantine_folder, key, Path(where), reason))
