"""Where file bytes live: a local directory (embedded mode) or S3-compatible object storage
(distributed mode, so workers on other machines read the same bytes).

Bytes always move in chunks: an upload is copied from its spool file, a download is iterated.
These calls block; the API runs them in its thread pool.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

from core.config import Settings
from core.errors import TooLarge as TooLarge  # re-exported: callers import it from here too

CHUNK = 1024 * 1024
# S3's smallest part of a multipart upload (all but the last part)
S3_MIN_PART = 5 * 1024 * 1024


class Storage(Protocol):
    def save(self, key: str, source: IO[bytes], limit: int) -> int: ...

    def open(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def concat(self, key: str, parts: Sequence[tuple[str, int]]) -> None:
        """Store under `key` the bytes of `parts` (key, size) one after the other."""
        ...


def _copy(source: IO[bytes], write: Callable[[bytes], object], limit: int) -> int:
    size = 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge("File", limit, param="file")
        write(chunk)
    return size


class LocalStorage:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, key: str, source: IO[bytes], limit: int) -> int:
        target = self.root / key
        partial = target.with_suffix(".partial")
        try:
            with open(partial, "wb") as out:
                size = _copy(source, out.write, limit)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def open(self, key: str) -> Iterator[bytes]:
        with open(self.root / key, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def concat(self, key: str, parts: Sequence[tuple[str, int]]) -> None:
        target = self.root / key
        partial = target.with_suffix(".partial")
        try:
            with open(partial, "wb") as out:
                for part, _ in parts:
                    for chunk in self.open(part):
                        out.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


class S3Storage:
    def __init__(self, settings: Settings) -> None:
        import boto3

        self.bucket = settings.s3_bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
        )

    def save(self, key: str, source: IO[bytes], limit: int) -> int:
        source.seek(0, os.SEEK_END)
        size = source.tell()
        if size > limit:
            raise TooLarge("File", limit, param="file")
        source.seek(0)
        self.client.upload_fileobj(source, self.bucket, key)  # multipart, in chunks
        return size

    def open(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def concat(self, key: str, parts: Sequence[tuple[str, int]]) -> None:
        """A multipart upload assembled by S3 itself: a part of at least S3_MIN_PART is copied
        there object to object (the default part size of the SDK's upload_file_chunked is 64 MB),
        smaller ones are gathered through a spooled file until they make a part S3 accepts."""
        if not parts:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
            return
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        at = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        done: list[dict[str, object]] = []
        spool: IO[bytes] | None = None

        def flush(spool: IO[bytes]) -> None:
            spool.seek(0)
            number = len(done) + 1
            etag = self.client.upload_part(**at, PartNumber=number, Body=spool)["ETag"]
            done.append({"PartNumber": number, "ETag": etag})
            spool.close()

        try:
            for part, size in parts:
                if spool is None and size >= S3_MIN_PART:
                    number, source = len(done) + 1, {"Bucket": self.bucket, "Key": part}
                    copied = self.client.upload_part_copy(**at, PartNumber=number, CopySource=source)
                    done.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
                    continue
                if spool is None:
                    spool = tempfile.SpooledTemporaryFile(max_size=8 * CHUNK)
                for chunk in self.open(part):
                    spool.write(chunk)
                if spool.tell() >= S3_MIN_PART:
                    flush(spool)
                    spool = None
            if spool is not None:  # the last part may be smaller
                flush(spool)
            self.client.complete_multipart_upload(**at, MultipartUpload={"Parts": done})
        except BaseException:
            if spool is not None:
                spool.close()
            self.client.abort_multipart_upload(**at)
            raise


def storage(settings: Settings) -> Storage:
    """S3 when a bucket is configured, else the local files directory."""
    return S3Storage(settings) if settings.s3_bucket else LocalStorage(settings.files_dir)
