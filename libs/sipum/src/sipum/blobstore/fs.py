"""Filesystem blob store: the embedded default when no S3 endpoint is configured.

Layout: the blob with key ``a/b/c.wav`` is the file ``<root>/a/b/c.wav``; its content type is
kept next to it in ``<root>/a/b/.c.wav.meta`` (a name no key can have, since key segments
never start with a dot).

Atomicity: a put writes ``.tmp-*`` in the target directory, fsyncs it, renames it over the
target (``rename(2)`` is atomic within one filesystem) and fsyncs the directory, so a reader
sees either the old file or the complete new one, and a crash leaves at most a stray temp
file, never a truncated blob.

Presigned URLs: a directory has no URL to sign, so ``presigned_get_url`` raises
``UnsupportedOperation``; callers check ``supports_presigned_urls`` and stream the blob
through themselves instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sipum.blobstore.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobNotFoundError,
    BlobSource,
    BlobStore,
    UnsupportedOperation,
    check_range,
    iter_source,
    validate_key,
    validate_prefix,
)
from sipum.errors import ConfigError

_TMP_PREFIX = ".tmp-"


def _meta_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.meta")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore(BlobStore):
    supports_presigned_urls = False

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(os.path.realpath(os.fspath(root)))
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """The file of ``key``; ``ValueError`` if the key is invalid or (through a symlink
        planted inside the root) would resolve outside it."""
        validate_key(key)
        path = self.root.joinpath(*key.split("/"))
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.root]) != str(self.root):
            raise ValueError(f"blob key {key!r} resolves outside the store")
        return path

    # -- writing ------------------------------------------------------------------------------

    def _open_temp(self, directory: Path) -> tuple[BinaryIO, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX)
        return os.fdopen(fd, "wb"), Path(name)

    def _finish(self, f: BinaryIO) -> None:
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()

    def _write_small(self, path: Path, data: bytes) -> None:
        f, tmp = self._open_temp(path.parent)
        try:
            f.write(data)
            self._finish(f)
            os.replace(tmp, path)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise

    async def put(
        self, key: str, data: BlobSource, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> BlobInfo:
        path = self.path_of(key)
        try:
            f, tmp = await asyncio.to_thread(self._open_temp, path.parent)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(
                f"blob key {key!r} conflicts with an existing blob: on the filesystem store "
                "a key cannot also be a prefix of another key"
            ) from None
        try:
            async for chunk in iter_source(data):
                await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(self._finish, f)
            if path.is_dir():
                raise ValueError(
                    f"blob key {key!r} conflicts with existing blobs under {key + '/'!r}"
                )
            meta = json.dumps({"content_type": content_type}).encode()
            await asyncio.to_thread(self._write_small, _meta_path(path), meta)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            f.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self.fsync:
            await asyncio.to_thread(_fsync_dir, path.parent)
        return await self.stat(key)

    # -- reading ------------------------------------------------------------------------------

    def _read(self, path: Path, key: str, offset: int, length: int | None) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(-1 if length is None else length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(key) from None

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        path = self.path_of(key)
        if length == 0:
            await self.stat(key)
            return b""
        return await asyncio.to_thread(self._read, path, key, offset, length)

    def _open_at(self, path: Path, key: str, offset: int) -> BinaryIO:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by stream()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(key) from None
        if os.path.isdir(path):
            f.close()
            raise BlobNotFoundError(key)
        f.seek(offset)
        return f

    async def stream(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncIterator[bytes]:
        check_range(offset, length)
        path = self.path_of(key)
        f = await asyncio.to_thread(self._open_at, path, key, offset)
        try:
            remaining = length
            while remaining is None or remaining > 0:
                n = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await asyncio.to_thread(f.read, n)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            f.close()

    def _stat(self, path: Path, key: str) -> BlobInfo:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFoundError(key) from None
        if not path.is_file():
            raise BlobNotFoundError(key)
        try:
            content_type = json.loads(_meta_path(path).read_bytes())["content_type"]
        except (OSError, ValueError, KeyError, TypeError):
            content_type = mimetypes.guess_type(path.name)[0] or DEFAULT_CONTENT_TYPE
        # Every put makes a new inode (rename of a fresh temp file), so inode + size + mtime
        # changes whenever the content may have changed.
        etag = f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
        return BlobInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            content_type=str(content_type),
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    async def stat(self, key: str) -> BlobInfo:
        path = self.path_of(key)
        return await asyncio.to_thread(self._stat, path, key)

    # -- other --------------------------------------------------------------------------------

    def _delete(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if path.is_dir():
                return  # a "directory" is not a blob
            path.unlink()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            _meta_path(path).unlink()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self.path_of(key))

    def _list(self, prefix: str) -> list[str]:
        head, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*head.split("/")) if head else self.root
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def list_keys(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    async def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        raise UnsupportedOperation(
            "the filesystem blob store has no URLs; stream the blob through the service "
            "(or configure s3_endpoint)"
        )

    def _check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=_TMP_PREFIX)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise ConfigError(
                "blob_root", f"cannot write to {self.root}: {exc.strerror or exc}"
            ) from exc

    async def check(self) -> None:
        await asyncio.to_thread(self._check)
