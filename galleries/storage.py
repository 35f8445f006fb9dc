"""Object storage for gallery media, on S3 or the local filesystem.

Both backends come from Django's ``STORAGES["default"]``: on S3 we use the
boto3 client that django-storages built from the same settings as production
(bucket, region, endpoint, credentials), so tests against an S3 endpoint
exercise the real configuration. What Django's Storage API lacks (presigned
POST policies, HEAD, ranged reads, overwriting a fixed key) is done here.

Keys are laid out per studio and gallery::

    studios/<studio>/galleries/<gallery>/uploads/<asset>-<random>.<ext>   one-time upload target
    studios/<studio>/galleries/<gallery>/originals/<asset>.<ext>          checked original
    studios/<studio>/galleries/<gallery>/derivatives/<asset>/<size>.webp
    studios/<studio>/galleries/<gallery>/exports/<export>.<ext>            built export (zip, csv, txt, pdf)

Browsers post to the one-time upload key; complete checks the object there
and the derivatives job copies that object (by its ETag) to the original's
key, which no upload target ever names, then deletes the upload key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from django.core import signing
from django.core.files.storage import FileSystemStorage, storages
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header

from studio.error_codes import ErrorCode
from studio.errors import Unavailable

LOCAL_UPLOAD_SALT = "galleries.local-upload"
logger = logging.getLogger(__name__)


class StorageError(Unavailable):
    """A storage call failed in a way worth retrying (network, throttling, 5xx).
    Tasks retry it; the API answers 503 STORAGE_UNAVAILABLE (studio.errors)."""

    code = ErrorCode.STORAGE_UNAVAILABLE


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str
    # An entity tag: the copy after a check names it, so the bytes copied
    # are the bytes checked (S3's; on the local filesystem the file's inode,
    # modification time and size, which a rewrite changes).
    etag: str = ""


class ObjectChanged(Exception):
    """A conditional copy found the source replaced since it was read."""


@dataclass(frozen=True)
class UploadTarget:
    url: str
    fields: dict[str, str]
    expires_at: Any


def original_key(asset: Any, extension: str) -> str:
    return f"studios/{asset.studio_id}/galleries/{asset.gallery_id}/originals/{asset.pk}.{extension}"


def upload_key(asset: Any, extension: str) -> str:
    """A key nobody can guess or reuse: what complete checked there, the
    derivatives job copies to the original's key."""
    token = secrets.token_urlsafe(12)
    return f"studios/{asset.studio_id}/galleries/{asset.gallery_id}/uploads/{asset.pk}-{token}.{extension}"


def derivative_key(asset: Any, size: str) -> str:
    return f"studios/{asset.studio_id}/galleries/{asset.gallery_id}/derivatives/{asset.pk}/{size}.webp"


def export_key(export: Any, extension: str) -> str:
    return f"studios/{export.studio_id}/galleries/{export.gallery_id}/exports/{export.pk}.{extension}"


# S3 refuses parts under 5 MiB (but the last); 8 MiB keeps a 2 GB archive
# well under the 10,000-part limit (80 GB) with one part buffered at a time.
MULTIPART_PART_SIZE = 8 * 1024 * 1024
READ_CHUNK_SIZE = 1024 * 1024
# The local store's temporary names: put's "<key>.tmp", copy's
# "<key>[.type].<hex>.tmp", write_stream's "<key>.<hex>.part".
_PARTIAL = re.compile(r"\.(?:[0-9a-f]{8}\.)?(?:tmp|part)$")


class MediaStore:
    """The operations gallery code needs, whatever the backend."""

    def presigned_upload(self, key: str, *, size: int, content_type: str, ttl: int) -> UploadTarget:
        raise NotImplementedError

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def read_head(self, key: str, length: int) -> bytes:
        raise NotImplementedError

    def peek(self, key: str, length: int) -> tuple[ObjectInfo, bytes] | None:
        """Size, type and the first ``length`` bytes in one round trip, or
        None when there is no such object."""
        raise NotImplementedError

    def download(self, key: str, fileobj: IO[bytes]) -> str:
        """Copy the object into ``fileobj``; return its SHA-256."""
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def copy(self, source: str, target: str, *, if_match: str = "") -> None:
        """Copy an object to another key, its type kept (delete the source in
        bulk afterwards: one call per thousand keys on S3). With ``if_match``
        (an ETag) raise ObjectChanged if the source is no longer that object."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def write_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Store what ``chunks`` yields under ``key`` as it is produced, never
        holding the whole object (S3: a multipart upload; local: a temporary
        file renamed at the end). If ``chunks`` raises (an error, a
        cancellation), nothing is left under ``key`` or on the side and the
        exception propagates. Returns the bytes written."""
        raise NotImplementedError

    def iter_chunks(self, key: str, chunk_size: int = READ_CHUNK_SIZE) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (FileNotFoundError when missing)."""
        raise NotImplementedError

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (the bucket reconciliation of cleanup_galleries)."""
        raise NotImplementedError

    def abandoned_partial(self, key: str, *, older_than: timedelta) -> bool:
        """Whether ``key`` is the leftover of a write that died (a process
        killed between writing a temporary file and renaming it) and is older
        than ``older_than``. S3 never shows a partial object (an unfinished
        multipart upload is no key), so only the local store has any."""
        return False

    def media_url(self, key: str, *, ttl: int, filename: str | None = None) -> str:
        """A short-lived URL the browser can fetch, handed out after our access
        checks (S3 only: the local store streams the file itself)."""
        raise NotImplementedError


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.target.write(data)


class S3MediaStore(MediaStore):
    def __init__(self, storage: Any) -> None:
        self.bucket = storage.bucket_name
        self.client = storage.connection.meta.client

    @contextmanager
    def _errors(self, what: str, key: str | None = None) -> Iterator[None]:
        """Map boto's errors to ours: missing -> FileNotFoundError; transient
        (5xx, throttling, dropped connections, bodies cut short) -> StorageError,
        which tasks retry. Wraps reading response bodies too: a connection can
        drop after the headers arrived."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(key) from exc
            if code in ("PreconditionFailed", "412") or status == 412:
                raise ObjectChanged(key) from exc
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling"):
                raise StorageError(f"S3 {what} failed: {code}") from exc
            raise
        except BotoCoreError as exc:  # connection errors, timeouts, IncompleteRead
            raise StorageError(f"S3 {what} failed: {exc}") from exc

    def _call(self, method: str, **kwargs: Any) -> Any:
        with self._errors(method, kwargs.get("Key")):
            return getattr(self.client, method)(**kwargs)

    def presigned_upload(self, key: str, *, size: int, content_type: str, ttl: int) -> UploadTarget:
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=ttl,
        )
        return UploadTarget(post["url"], post["fields"], timezone.now() + timedelta(seconds=ttl))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self._call("head_object", Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        return ObjectInfo(
            size=meta["ContentLength"], content_type=meta.get("ContentType", ""), etag=meta.get("ETag", "")
        )

    def read_head(self, key: str, length: int) -> bytes:
        response = self._call("get_object", Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        with self._errors("read", key):
            return response["Body"].read()

    def peek(self, key: str, length: int) -> tuple[ObjectInfo, bytes] | None:
        from botocore.exceptions import ClientError

        try:
            response = self._call("get_object", Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        except FileNotFoundError:
            return None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            info = self.head(key)  # an empty object has no byte 0 to range over
            return (info, b"") if info is not None else None
        with self._errors("read", key):
            head = response["Body"].read()
        total = response.get("ContentRange", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else response["ContentLength"]
        return ObjectInfo(size=size, content_type=response.get("ContentType", ""), etag=response.get("ETag", "")), head

    def download(self, key: str, fileobj: IO[bytes]) -> str:
        writer = _HashingWriter(fileobj)
        response = self._call("get_object", Bucket=self.bucket, Key=key)
        with self._errors("download", key):
            for chunk in response["Body"].iter_chunks(chunk_size=1024 * 1024):
                writer.write(chunk)
        return writer.digest.hexdigest()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(
            "put_object",
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl="private, max-age=31536000, immutable",
        )

    def copy(self, source: str, target: str, *, if_match: str = "") -> None:
        # CopyObject handles objects up to 5 GB in one call; originals are
        # capped far below (UPLOAD_MAX_BYTES). Server-side: no bytes travel.
        condition = {"CopySourceIfMatch": if_match} if if_match else {}
        answer = self._call(
            "copy_object",
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
            MetadataDirective="COPY",
            **condition,
        )
        # S3 refuses the copy itself (412). An endpoint that ignores the
        # condition shows it in the copy's ETag; but a copy's ETag may also
        # differ for the same bytes (SSE-KMS/SSE-C ETags are not an MD5 of
        # the data), so a differing one is only a swap if the source itself
        # is no longer the object checked: then the copy is undone.
        copied = answer.get("CopyObjectResult", {}).get("ETag", "")
        if if_match and copied and copied != if_match:
            now = self.head(source)
            if now is None or now.etag != if_match:
                self.delete([target])
                raise ObjectChanged(source)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            chunk = keys[start : start + 1000]
            response = self._call(
                "delete_objects", Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            # DeleteObjects answers 200 and lists the keys it could not delete.
            failed = [error.get("Key") for error in response.get("Errors", [])]
            if failed:
                raise StorageError(f"S3 could not delete {len(failed)} object(s), e.g. {failed[0]}")

    def write_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        part_size = MULTIPART_PART_SIZE
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        written = 0
        extra = {"ContentType": content_type, "CacheControl": "private, max-age=31536000, immutable"}
        try:
            for chunk in chunks:
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= part_size:
                    if upload_id is None:
                        upload = self._call("create_multipart_upload", Bucket=self.bucket, Key=key, **extra)
                        upload_id = upload["UploadId"]
                    part = bytes(buffer[:part_size])
                    del buffer[:part_size]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                # Small files (a CSV, a list): one PUT, no multipart round trips.
                self._call("put_object", Bucket=self.bucket, Key=key, Body=bytes(buffer), **extra)
                return written
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            self._call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                # Parts of an upload never completed are stored (and billed)
                # until aborted; a bucket lifecycle rule is the backstop.
                try:
                    self._call("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id)
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    logger.warning("could not abort the multipart upload of %s", key, exc_info=True)
            raise
        return written

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        answer = self._call(
            "upload_part", Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def iter_chunks(self, key: str, chunk_size: int = READ_CHUNK_SIZE) -> Iterator[bytes]:
        response = self._call("get_object", Bucket=self.bucket, Key=key)
        with self._errors("read", key):
            yield from response["Body"].iter_chunks(chunk_size=chunk_size)

    def media_url(self, key: str, *, ttl: int, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = content_disposition_header(True, filename)
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, a page (1000 keys) at a time."""
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]


class LocalMediaStore(MediaStore):
    """The embedded default. Uploads go to a Django endpoint that applies the
    same rules as an S3 POST policy (galleries.views.local_upload)."""

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def _path(self, key: str) -> Path:
        return Path(self.storage.path(key))

    def presigned_upload(self, key: str, *, size: int, content_type: str, ttl: int) -> UploadTarget:
        token = signing.dumps({"key": key, "size": size, "type": content_type}, salt=LOCAL_UPLOAD_SALT, compress=True)
        # The policy rides in the URL, so the endpoint checks it before reading the body.
        # Relative: the API makes it absolute on the host the client called
        # (SITE_URL would send a browser on localhost to 127.0.0.1, another
        # origin its Content-Security-Policy and CORS refuse).
        url = f"{reverse('galleries:local-upload')}?{urlencode({'policy': token})}"
        expires_at = timezone.now() + timedelta(seconds=ttl)
        return UploadTarget(url, {"key": key, "Content-Type": content_type}, expires_at)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        meta = path.with_name(path.name + ".type")
        stat = path.stat()
        return ObjectInfo(
            size=stat.st_size,
            content_type=meta.read_text() if meta.exists() else "",
            etag=f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}",
        )

    def read_head(self, key: str, length: int) -> bytes:
        with open(self._path(key), "rb") as fh:
            return fh.read(length)

    def peek(self, key: str, length: int) -> tuple[ObjectInfo, bytes] | None:
        info = self.head(key)
        return (info, self.read_head(key, length)) if info is not None else None

    def download(self, key: str, fileobj: IO[bytes]) -> str:
        writer = _HashingWriter(fileobj)
        with open(self._path(key), "rb") as fh:
            shutil.copyfileobj(fh, writer, 1024 * 1024)  # type: ignore[misc]
        return writer.digest.hexdigest()

    def write_upload(self, key: str, chunks: Iterator[bytes], content_type: str) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(path, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
        path.with_name(path.name + ".type").write_text(content_type)
        return written

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a file

    def copy(self, source: str, target: str, *, if_match: str = "") -> None:
        # A hard link: no bytes copied, and deleting the source name later
        # leaves the target whole. Atomic through a temporary name.
        src, dst = self._path(source), self._path(target)
        if if_match:
            # The local upload endpoint refuses a second POST already; the
            # condition is kept so both stores answer a swap alike.
            now = self.head(source)
            if now is None:
                raise FileNotFoundError(source)
            if now.etag != if_match:
                raise ObjectChanged(source)
        dst.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", ".type"):
            origin = src.with_name(src.name + suffix)
            if suffix and not origin.exists():
                continue
            tmp = dst.with_name(f"{dst.name}{suffix}.{secrets.token_hex(4)}.tmp")
            try:
                os.link(origin, tmp)
            except OSError:  # another filesystem, or links not allowed
                shutil.copyfile(origin, tmp)
            tmp.replace(dst.with_name(dst.name + suffix))

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            for candidate in (path, path.with_name(path.name + ".type")):
                candidate.unlink(missing_ok=True)

    def open(self, key: str) -> IO[bytes]:
        return open(self._path(key), "rb")

    def write_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Next to the key, so the rename is atomic (same filesystem) and a
        # reader never sees half an archive.
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
        written = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    written += len(chunk)
            path.with_name(path.name + ".type").write_text(content_type)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return written

    def iter_chunks(self, key: str, chunk_size: int = READ_CHUNK_SIZE) -> Iterator[bytes]:
        with open(self._path(key), "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def abandoned_partial(self, key: str, *, older_than: timedelta) -> bool:
        if not _PARTIAL.search(key):
            return False
        try:
            modified = self._path(key).stat().st_mtime
        except FileNotFoundError:
            return False
        return time.time() - modified > older_than.total_seconds()

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``. The ``.type`` sidecars belong to their
        object (deleted with it), not keys of their own; ``.part`` and
        ``.tmp`` files are writes in progress (or a crashed one's leftovers),
        listed so a crash's leftovers can be found."""
        root = Path(self.storage.location)
        base = self._path(prefix) if prefix else root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".type"):
                yield path.relative_to(root).as_posix()


def media_store() -> MediaStore:
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        return LocalMediaStore(storage)
    if hasattr(storage, "bucket_name") and hasattr(storage, "connection"):
        return S3MediaStore(storage)
    raise RuntimeError(f"Unsupported media storage {type(storage).__name__}")
