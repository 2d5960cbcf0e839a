"""The identity of an uploaded file and where it lives over its life: uploads -> archive or quarantine.

A file's partition key is its sanitised name plus a prefix of its content hash. Dagster partition keys may not
contain "/" or "|", and the hash makes a changed file with the same name a new partition while the same bytes
under the same name map to the partition that already exists.
"""

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_HASH_CHARS = 12
_MAX_STEM = 60


@dataclass(frozen=True)
class UploadedFile:
    path: Path
    content_hash: str
    size_bytes: int

    @property
    def key(self) -> str:
        return partition_key(self.path.name, self.content_hash)


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
    return UploadedFile(path=path, content_hash=content_hash(path), size_bytes=path.stat().st_size)


def is_candidate(path: Path) -> bool:
    """Visible regular files; editors' and copiers' temporary files start with a dot and are left alone."""
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith(".reason.txt")


def locate(key: str, uploads: Path, archive: Path, quarantine: Path) -> UploadedFile:
    """Find the file behind a partition key: moved under its key after a first run, else still in uploads."""
    for folder in (archive / key, quarantine / key):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if is_candidate(path):
                return describe(path)
    stem = key[: -(_HASH_CHARS + 1)]
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        if is_candidate(path) and sanitised_name(path.name) == stem:
            candidate = describe(path)
            if candidate.key == key:
                return candidate
    raise FileNotFoundError(f"no file for partition {key!r} in {uploads}, {archive} or {quarantine}")


def move_into(folder: Path, key: str, path: Path) -> Path:
    """Move a file into ``folder/<key>/`` keeping its name; the key folder keeps two versions of a name apart."""
    target_dir = folder / key
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if path.resolve() != target.resolve():
        shutil.move(str(path), target)
    return target


def quarantine(folder: Path, key: str, path: Path, reason: str) -> Path:
    """Move a rejected file aside with a ``.reason.txt`` a person can read next to it."""
    target = move_into(folder, key, path)
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
    return target
