"""S3 blob store through the ``minio`` SDK (MinIO in production, moto_server in tests).

The SDK is blocking; every call runs in this store's own thread pool so slow storage never
starves the event loop or the default executor. A put from an async iterator is bridged to
the SDK's ``read()`` by ``_AsyncIterReader``: the SDK thread asks the event loop for the next
chunk, so memory stays bounded by the part size and the producer is paced by the upload.
Puts of unknown length use multipart upload (``length=-1``); the object only appears when
the upload completes, and the SDK aborts the upload if the producer fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.util import Retry, Timeout

from sipum.blobstore.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobNotFoundError,
    BlobSource,
    BlobStore,
    check_range,
    validate_key,
    validate_prefix,
)
from sipum.errors import ConfigError

T = TypeVar("T")

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
DEFAULT_PART_SIZE = 8 * 1024 * 1024

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_BAD_KEY_ID = {"InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"}
_BAD_SECRET = {"SignatureDoesNotMatch"}
_DENIED = {"AccessDenied", "AllAccessDisabled"}


class _Aborted(Exception):
    """The put was cancelled; makes the SDK abort its multipart upload."""


class _AsyncIterReader(io.RawIOBase):
    """A blocking ``read()`` over an async iterator living on ``loop`` (used by SDK threads)."""

    def __init__(self, chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._it = aiter(chunks)
        self._loop = loop
        self._buf = bytearray()
        self._eof = False
        self._aborted = False
        self._pending: concurrent.futures.Future[bytes | None] | None = None

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return bytes(await anext(self._it))
        except StopAsyncIteration:
            return None

    def abort(self) -> None:
        self._aborted = True
        if self._pending is not None:
            self._pending.cancel()

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        while not self._eof and (want is None or len(self._buf) < want):
            if self._aborted:
                raise _Aborted()
            self._pending = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            try:
                chunk = self._pending.result()
            except concurrent.futures.CancelledError:
                raise _Aborted() from None
            if chunk is None:
                self._eof = True
            else:
                self._buf += chunk
        n = len(self._buf) if want is None else min(want, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def _is_not_found(exc: S3Error) -> bool:
    return exc.code in _NOT_FOUND


class S3BlobStore(BlobStore):
    supports_presigned_urls = True

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_workers: int = 16,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.part_size = part_size
        http = urllib3.PoolManager(
            timeout=Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=max_workers,
            # Few retries: an unreachable endpoint must turn into a clear error quickly.
            retries=Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="s3-blobstore"
        )
        self._bucket_ready = False

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3BlobStore({scheme}://{self.endpoint}/{self.bucket})"

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- bucket / health ----------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        # A GET (listing one key) rather than HEAD: error replies to HEAD have no body, so
        # a wrong secret and a wrong key id would both read as a bare 403.
        try:
            next(iter(self.client.list_objects(self.bucket)), None)
            return
        except S3Error as exc:
            if exc.code != "NoSuchBucket":
                raise
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:
            # Another replica made it first.
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    async def check(self) -> None:
        where = f"{'https' if self.secure else 'http'}://{self.endpoint}"
        try:
            await self._run(self._ensure_bucket)
        except S3Error as exc:
            if exc.code in _BAD_KEY_ID:
                raise ConfigError(
                    "s3_access_key", f"{where} does not know this access key ({exc.code})"
                ) from exc
            if exc.code in _BAD_SECRET:
                raise ConfigError(
                    "s3_secret_key", f"{where} rejected the request signature ({exc.code})"
                ) from exc
            if exc.code in _DENIED:
                raise ConfigError(
                    "s3_access_key",
                    f"{where} denies access to bucket {self.bucket!r} with these credentials",
                ) from exc
            raise ConfigError("s3_bucket", f"{where}: {exc.code}: {exc.message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ConfigError("s3_endpoint", f"cannot reach {where}: {reason}") from exc
        except (ServerError, InvalidResponseError) as exc:
            raise ConfigError("s3_endpoint", f"{where} is not a working S3 server: {exc}") from exc
        self._bucket_ready = True

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client._http.clear()

    # -- writing ------------------------------------------------------------------------------

    async def put(
        self, key: str, data: BlobSource, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> BlobInfo:
        validate_key(key)
        reader: _AsyncIterReader | None = None
        stream: BinaryIO
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            await self._run(
                self.client.put_object,
                self.bucket,
                key,
                io.BytesIO(body),
                len(body),
                content_type=content_type,
            )
            return await self.stat(key)
        if isinstance(data, AsyncIterable):
            reader = _AsyncIterReader(data, asyncio.get_running_loop())
            stream = reader  # type: ignore[assignment]
        elif callable(getattr(data, "read", None)):
            stream = data
        else:
            raise TypeError(f"cannot store {type(data).__name__}")
        try:
            await self._run(
                self.client.put_object,
                self.bucket,
                key,
                stream,
                -1,
                content_type=content_type,
                part_size=self.part_size,
                num_parallel_uploads=1,
            )
        except asyncio.CancelledError:
            if reader is not None:
                reader.abort()
            raise
        return await self.stat(key)

    # -- reading ------------------------------------------------------------------------------

    def _get(self, key: str, offset: int, length: int | None) -> bytes:
        try:
            resp = self.client.get_object(self.bucket, key, offset=offset, length=length or 0)
        except S3Error as exc:
            if _is_not_found(exc):
                raise BlobNotFoundError(key) from None
            if exc.code == "InvalidRange":
                return b""  # offset at or past the end: an empty slice
            raise
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        check_range(offset, length)
        if length == 0:
            await self.stat(key)
            return b""
        return await self._run(self._get, key, offset, length)

    def _open(self, key: str, offset: int, length: int | None) -> Any:
        try:
            return self.client.get_object(self.bucket, key, offset=offset, length=length or 0)
        except S3Error as exc:
            if _is_not_found(exc):
                raise BlobNotFoundError(key) from None
            if exc.code == "InvalidRange":
                return None
            raise

    async def stream(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncIterator[bytes]:
        validate_key(key)
        check_range(offset, length)
        if length == 0:
            await self.stat(key)
            return
        resp = await self._run(self._open, key, offset, length)
        if resp is None:
            return
        try:
            while True:
                chunk = await self._run(resp.read, chunk_size)
                if not chunk:
                    return
                yield bytes(chunk)
        finally:
            resp.close()
            resp.release_conn()

    def _stat(self, key: str) -> BlobInfo:
        try:
            obj = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if _is_not_found(exc):
                raise BlobNotFoundError(key) from None
            raise
        modified = obj.last_modified or datetime.now(UTC)
        return BlobInfo(
            key=key,
            size=int(obj.size or 0),
            etag=(obj.etag or "").strip('"'),
            content_type=obj.content_type or DEFAULT_CONTENT_TYPE,
            modified=modified.astimezone(UTC),
        )

    async def stat(self, key: str) -> BlobInfo:
        validate_key(key)
        return await self._run(self._stat, key)

    # -- other --------------------------------------------------------------------------------

    async def delete(self, key: str) -> None:
        validate_key(key)
        try:
            await self._run(self.client.remove_object, self.bucket, key)
        except S3Error as exc:
            if not _is_not_found(exc):
                raise

    def _list(self, prefix: str) -> list[str]:
        objects = self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return sorted(o.object_name for o in objects if o.object_name and not o.is_dir)

    async def list_keys(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        return await self._run(self._list, prefix)

    def _list_sizes(self, prefix: str) -> dict[str, int]:
        objects = self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return {o.object_name: int(o.size or 0) for o in objects if o.object_name and not o.is_dir}

    async def list_sizes(self, prefix: str = "") -> dict[str, int]:
        # ListObjectsV2 returns each object's size with its key: one round trip
        validate_prefix(prefix)
        return await self._run(self._list_sizes, prefix)

    async def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        validate_key(key)
        if not timedelta(seconds=1) <= expires <= timedelta(days=7):
            raise ValueError("expires must be between 1 second and 7 days (SigV4 limit)")
        return await self._run(self.client.presigned_get_object, self.bucket, key, expires=expires)
