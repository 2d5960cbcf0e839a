"""The watched location as an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS's S3 API), through boto3.

The contract is the folder's (files.Folder): objects directly under the prefix are the uploads; loaded and rejected
objects move to the prefixes ``archive/<key>/`` and ``quarantine/<key>/`` beside it (siblings of the uploads
prefix, so a listing of the uploads, which stops at "/", never sees them). A move is a copy, then a delete of the
original, and happens only after the load has committed. Nothing is deleted otherwise.

S3 shows an object only once its upload is complete (a multipart upload in progress lists nothing), and a PUT over
an existing name replaces it whole; an object is still only read once its ETag and size held for two ticks, as a
file's size and mtime do. Objects are read as streams: hashed in 1 MiB chunks by the sensor, and copied to a local
spool file for the run to read, with the ETag the sensor saw as a precondition and the content hash checked
against the partition key, so the bytes loaded are always the version the key names.
"""

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import boto3
import botocore.config
from botocore.exceptions import ClientError

from analytics_pipeline.ingestion.files import (
    REASON,
    Entry,
    Listing,
    UploadedFile,
    partition_key,
    sanitised_name,
)

# A tick lists at most this many keys from where the last one stopped (a start-after cursor), and wraps around at
# the end: with 100,000 objects waiting, a tick still costs ten list calls, and every object is seen within a sweep.
LIST_KEYS_PER_TICK = 10_000
_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class Bucket:
    """``s3://bucket/prefix/`` as the watched location. Credentials, endpoint and region come from the resource
    (dg.EnvVar in definitions.py); None leaves them to boto3's own lookup (instance roles, ~/.aws)."""

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{url!r} is not a bucket URL; expected s3://bucket/ or s3://bucket/prefix/")
        self.name = parsed.netloc
        self.prefix = parsed.path.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        parent = self.prefix.rstrip("/").rpartition("/")[0]
        base = f"{parent}/" if parent else ""
        self.areas = {"archive": f"{base}archive/", "quarantine": f"{base}quarantine/"}
        if self.prefix in self.areas.values():
            raise ValueError(f"{url}: the uploads prefix cannot be the archive or the quarantine prefix")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        self._spool: dict[str, Path] = {}

    def __str__(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def _key(self, where: str) -> str:
        head = f"s3://{self.name}/"
        if not where.startswith(head):
            raise ValueError(f"{where} is not in {head}")
        return where[len(head):]

    def listing(self, after: str | None = None) -> Listing:
        """The objects directly under the prefix whose names sort after ``after``, up to LIST_KEYS_PER_TICK."""
        listing = Listing(entries=[], start=after)
        arguments = {"Bucket": self.name, "Prefix": self.prefix, "Delimiter": "/"}
        if after:
            arguments["StartAfter"] = self.prefix + after
        pages = self.client.get_paginator("list_objects_v2").paginate(
            **arguments, PaginationConfig={"PageSize": min(1000, LIST_KEYS_PER_TICK)}
        )
        listed = 0
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix):]
                if name and not name.startswith(".") and not name.endswith(REASON):
                    # The same bytes uploaded again keep their ETag; the upload time tells the two apart.
                    modified = item["LastModified"].timestamp()
                    version = item["ETag"].strip('"') + f"@{modified}"
                    listing.entries.append(Entry(name, self.url(item["Key"]), item["Size"], version, modified))
            listed += page.get("KeyCount", 0)
            if listed >= LIST_KEYS_PER_TICK and page.get("IsTruncated"):
                # The last key or "sub-folder" of the page: starting after it skips that folder's keys too.
                last = [item["Key"] for item in page.get("Contents", [])[-1:]]
                last += [item["Prefix"] for item in page.get("CommonPrefixes", [])[-1:]]
                listing.after = max(last)[len(self.prefix):]
                break
        return listing

    def _read(self, where: str, etag: str | None) -> Iterator[bytes]:
        """The object's bytes in chunks; FileNotFoundError when it is gone or no longer the version ``etag``."""
        arguments = {"Bucket": self.name, "Key": self._key(where)} | ({"IfMatch": f'"{etag}"'} if etag else {})
        try:
            body = self.client.get_object(**arguments)["Body"]
        except ClientError as error:
            if _code(error) in _MISSING | _CHANGED:
                raise FileNotFoundError(f"{where}: gone or replaced since it was listed") from error
            raise
        with body:
            yield from body.iter_chunks(_CHUNK)

    def content_hash(self, entry: Entry) -> str:
        """Of the object as it is now: replaced since the listing, its version differs at the next tick, which
        hashes it again; the run checks the bytes it loads against the key either way."""
        digest = hashlib.sha256()
        for chunk in self._read(entry.where, None):
            digest.update(chunk)
        return digest.hexdigest()

    def objects(self, prefix: str, delimiter: bool = False) -> list[dict]:
        arguments = {"Bucket": self.name, "Prefix": prefix} | ({"Delimiter": "/"} if delimiter else {})
        pages = self.client.get_paginator("list_objects_v2").paginate(**arguments)
        return [item for page in pages for item in page.get("Contents", [])]

    def locate(self, keys: list[str]) -> dict[str, UploadedFile]:
        """The object behind each partition key - in the uploads (dropped, or dropped again after a quarantine),
        else under its key in the archive or quarantine after an earlier run - copied to a local spool file for
        `readable`. A key whose object is gone, or whose bytes are no longer the ones the key was hashed from, is
        left out (the sensor loads the new version under its own key). The uploads are listed once."""
        found: dict[str, UploadedFile] = {}
        waiting: dict[str, list[dict]] = {}
        for item in self.objects(self.prefix, delimiter=True):
            waiting.setdefault(sanitised_name(item["Key"][len(self.prefix):]), []).append(item)
        for key in keys:
            upload = self._first(waiting.get(key.rpartition("_")[0], []), key) or self._first(self._filed(key), key)
            if upload:
                found[key] = upload
        return found

    def _filed(self, key: str) -> list[dict]:
        return [
            item for area in self.areas.values() for item in self.objects(f"{area}{key}/")
            if not item["Key"].endswith(REASON) and item["Key"].rpartition("/")[2] != REASON.lstrip(".")
        ]

    def _first(self, items: list[dict], key: str) -> UploadedFile | None:
        return next((upload for item in items if (upload := self._fetch(item, key))), None)

    def _fetch(self, item: dict, key: str) -> UploadedFile | None:
        name = item["Key"].rpartition("/")[2]
        where = self.url(item["Key"])
        spool = Path(tempfile.mkdtemp(prefix="analytics-spool-")) / (name if len(name.encode()) < 200 else key)
        digest = hashlib.sha256()
        try:
            with spool.open("wb") as handle:
                for chunk in self._read(where, item["ETag"].strip('"')):
                    digest.update(chunk)
                    handle.write(chunk)
        except FileNotFoundError:
            shutil.rmtree(spool.parent)
            return None
        if partition_key(name, digest.hexdigest()) != key:
            shutil.rmtree(spool.parent)
            return None
        self._spool[key] = spool
        return UploadedFile(name=name, where=where, content_hash=digest.hexdigest(), size_bytes=item["Size"])

    @contextmanager
    def readable(self, upload: UploadedFile) -> Iterator[Path]:
        """The spool copy `locate` made; removed once read (the object itself stays in the bucket)."""
        spool = self._spool.pop(upload.key)
        try:
            yield spool
        finally:
            shutil.rmtree(spool.parent, ignore_errors=True)

    def check_unchanged(self, upload: UploadedFile) -> None:
        """The spool copy cannot change, and its bytes were checked against the key when it was made."""

    def destination(self, area: str, key: str, where: str) -> str:
        return self.url(f"{self.areas[area]}{key}/{where.rpartition('/')[2]}")

    def exists(self, where: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=self._key(where))
        except ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise
        return True

    def move(self, where: str, target: str) -> str:
        """Copy, then delete the original. An object already at ``target`` (a retry after the move) stays."""
        source, target_key = self._key(where), self._key(target)
        if source == target_key:
            return target
        try:
            self.client.copy({"Bucket": self.name, "Key": source}, self.name, target_key)
        except ClientError as error:
            if _code(error) not in _MISSING:
                raise
            if not self.exists(target):
                raise FileNotFoundError(f"{where} is neither in the watched location nor at {target}") from error
            return target
        self.client.delete_object(Bucket=self.name, Key=source)
        return target

    def archive(self, key: str, where: str) -> str:
        return self.move(where, self.destination("archive", key, where))

    def quarantine(self, key: str, where: str, reason: str) -> str:
        """Move a rejected object aside with a reason object a person can read next to it."""
        target = self.move(where, self.destination("quarantine", key, where))
        self.client.put_object(
            Bucket=self.name, Key=self._key(target) + REASON, Body=(reason + "\n").encode(), ContentType="text/plain"
        )
        return target
