"""The ``BlobStore`` interface shared by the filesystem and S3 backends.

Keys are ``/``-separated relative paths of *safe segments* (see ``validate_key``), the same
rule for both backends, so a key that works on a developer's disk works on S3 and no key
can name a file outside the filesystem store's root.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, ClassVar

#: What ``put`` accepts: the whole blob, an async iterator of chunks (length unknown), or a
#: binary file object opened for reading (read in a worker thread).
BlobSource = bytes | bytearray | memoryview | AsyncIterable[bytes] | BinaryIO

MAX_KEY_BYTES = 1024  # S3's limit on object key length
MAX_SEGMENT_BYTES = 255  # common file name limit

# One path segment: a safe character set, never starting with a dot — so ``.`` and ``..`` are
# impossible and the filesystem backend's temp/metadata files (``.tmp-*``, ``.*.meta``) can
# never be named by a key.
_SEGMENT = re.compile(r"[A-Za-z0-9_@+=~\-][A-Za-z0-9_@+=~.\-]*")

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK_SIZE = 64 * 1024


class BlobNotFoundError(LookupError):
    """No blob under that key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no blob with key {key!r}")
        self.key = key


class UnsupportedOperation(NotImplementedError):
    """The backend cannot do this by design (e.g. presigned URLs on the filesystem store);
    check ``BlobStore.supports_presigned_urls`` first."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    etag: str
    content_type: str
    modified: datetime


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid blob key, else raise ``ValueError``.

    Valid: 1..1024 bytes of segments joined by ``/``; each segment 1..255 characters of
    ``A-Z a-z 0-9 _ @ + = ~ - .`` not starting with ``.``. So absolute keys, empty segments
    (``a//b``, trailing ``/``), ``.``/``..``, backslashes, NUL and other control characters,
    spaces, and drive letters (``C:``) are all rejected.
    """
    if not isinstance(key, str):
        raise ValueError(f"blob key must be a string, not {type(key).__name__}")
    if not key:
        raise ValueError("blob key is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"blob key longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or len(segment) > MAX_SEGMENT_BYTES:
            raise ValueError(f"invalid blob key {key!r}: bad segment {segment!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or the start of a valid key (may end in ``/``)."""
    if prefix == "":
        return prefix
    body = prefix[:-1] if prefix.endswith("/") else prefix
    validate_key(body)
    return prefix


def check_range(offset: int, length: int | None) -> None:
    if offset < 0:
        raise ValueError("offset must be >= 0")
    if length is not None and length < 0:
        raise ValueError("length must be >= 0 or None")


class BlobStore(ABC):
    """Async blob storage. Reads clip to the blob like a slice: a range past the end gives
    ``b""``; a missing key raises ``BlobNotFoundError``; invalid keys raise ``ValueError``."""

    #: Whether ``presigned_get_url`` works (False for the filesystem store).
    supports_presigned_urls: ClassVar[bool] = False

    @abstractmethod
    async def put(
        self, key: str, data: BlobSource, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> BlobInfo:
        """Store a blob, replacing any old one. Readers see the old blob or the complete
        new one, never a part; if ``data`` raises, nothing changes and the error propagates."""

    @abstractmethod
    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset+length)`` of the blob (to its end when length is None)."""

    @abstractmethod
    def stream(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncIterator[bytes]:
        """Like ``get`` but in chunks; raises ``BlobNotFoundError`` on first iteration."""

    @abstractmethod
    async def stat(self, key: str) -> BlobInfo: ...

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except BlobNotFoundError:
            return False
        return True

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing key is not an error."""

    @abstractmethod
    async def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix`` (plain string prefix), sorted."""

    async def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key starting with ``prefix`` and its size in bytes (backends that list sizes
        with the keys answer in one round trip; this default stats each key)."""
        sizes: dict[str, int] = {}
        for key in await self.list_keys(prefix):
            try:
                sizes[key] = (await self.stat(key)).size
            except BlobNotFoundError:
                continue  # deleted since the listing
        return sizes

    @abstractmethod
    async def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL anyone can GET until ``expires`` passes; ``UnsupportedOperation`` if the
        backend has none."""

    @abstractmethod
    async def check(self) -> None:
        """Health and start-up check: the store is reachable and writable with these
        credentials (creating the bucket/root if missing); raises ``ConfigError`` naming
        the setting to fix."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release resources."""


async def iter_source(data: BlobSource, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """Any ``BlobSource`` as an async iterator of non-empty chunks."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data):
            yield bytes(data)
        return
    if isinstance(data, AsyncIterable):
        async for chunk in data:
            if chunk:
                yield bytes(chunk)
        return
    if callable(getattr(data, "read", None)):
        while True:
            chunk = await asyncio.to_thread(data.read, chunk_size)
            if not chunk:
                return
            yield bytes(chunk)
    raise TypeError(f"cannot store {type(data).__name__}: need bytes, async iterator or file")
