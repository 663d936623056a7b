"""One suite, both backends: the filesystem store and S3 (minio SDK against moto_server)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sipum.blobstore import (
    BlobNotFoundError,
    BlobStore,
    FileBlobStore,
    S3BlobStore,
    UnsupportedOperation,
)

from .conftest import PART_SIZE

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


async def chunks(data: bytes, size: int, delay: float = 0.0) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if delay:
            await asyncio.sleep(delay)
        yield data[i : i + size]


async def failing_writer(data: bytes, fail_after: int) -> AsyncIterator[bytes]:
    sent = 0
    for i in range(0, len(data), 256 * 1024):
        if sent >= fail_after:
            raise RuntimeError("producer died")
        chunk = data[i : i + 256 * 1024]
        sent += len(chunk)
        yield chunk
    raise RuntimeError("producer died at the end")


def leftovers(store: BlobStore) -> list[str]:
    """Temp files the filesystem store left behind anywhere under its root."""
    assert isinstance(store, FileBlobStore)
    return [
        os.path.join(d, f) for d, _, files in os.walk(store.root) for f in files if ".tmp-" in f
    ]


async def open_multipart_uploads(store: S3BlobStore) -> list[str]:
    """Keys with an unfinished multipart upload (moto checks no signature, so plain GET)."""
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://{store.endpoint}/{store.bucket}?uploads")
    r.raise_for_status()
    root = ET.fromstring(r.content)
    return [el.text or "" for el in root.iter() if el.tag.endswith("Key")]


async def test_put_get_stat(store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    info = await store.put("messages/example.com/alice/1.wav", DATA, content_type="audio/wav")
    assert info.size == len(DATA)
    assert info.key == "messages/example.com/alice/1.wav"
    assert await store.get("messages/example.com/alice/1.wav") == DATA
    st = await store.stat("messages/example.com/alice/1.wav")
    assert st.size == len(DATA)
    assert st.content_type == "audio/wav"
    assert st.etag and st.etag == info.etag
    assert st.modified.tzinfo is not None
    assert before <= st.modified <= datetime.now(UTC) + timedelta(seconds=2)
    assert await store.exists("messages/example.com/alice/1.wav")


async def test_overwrite_replaces_content_and_etag(store: BlobStore) -> None:
    first = await store.put("k/a.bin", b"first version")
    second = await store.put("k/a.bin", b"second, longer version")
    assert await store.get("k/a.bin") == b"second, longer version"
    assert second.etag != first.etag
    assert (await store.stat("k/a.bin")).size == len(b"second, longer version")


async def test_default_content_type(store: BlobStore) -> None:
    await store.put("k/blob", b"x")
    assert (await store.stat("k/blob")).content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (0, 1), (1, 10), (255, 257), (10000, None), (10000, 500), (10239, 1),
     (10240, None), (10240, 5), (20000, 3), (5, 0), (0, 10240), (0, 99999)],
)  # fmt: skip
async def test_ranged_get_is_a_slice(store: BlobStore, offset: int, length: int | None) -> None:
    await store.put("r/data.bin", DATA)
    end = None if length is None else offset + length
    assert await store.get("r/data.bin", offset, length) == DATA[offset:end]
    streamed = b"".join([c async for c in store.stream("r/data.bin", offset, length)])
    assert streamed == DATA[offset:end]


async def test_stream_respects_chunk_size(store: BlobStore) -> None:
    await store.put("r/data.bin", DATA)
    sizes = [len(c) async for c in store.stream("r/data.bin", 100, 5000, chunk_size=1024)]
    assert sum(sizes) == 5000
    assert max(sizes) <= 1024
    assert len(sizes) >= 5


async def test_negative_range_rejected(store: BlobStore) -> None:
    await store.put("r/data.bin", DATA)
    with pytest.raises(ValueError):
        await store.get("r/data.bin", -1)
    with pytest.raises(ValueError):
        await store.get("r/data.bin", 0, -5)


async def test_missing_key(store: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await store.get("no/such.wav")
    with pytest.raises(BlobNotFoundError):
        await store.get("no/such.wav", 0, 0)
    with pytest.raises(BlobNotFoundError):
        await store.stat("no/such.wav")
    with pytest.raises(BlobNotFoundError):
        async for _ in store.stream("no/such.wav"):
            pass
    assert not await store.exists("no/such.wav")


async def test_a_prefix_is_not_a_blob(store: BlobStore) -> None:
    await store.put("dir/sub/x.wav", b"x")
    assert not await store.exists("dir/sub")
    with pytest.raises(BlobNotFoundError):
        await store.get("dir/sub")
    await store.delete("dir/sub")  # deleting a "directory" is a no-op
    assert await store.get("dir/sub/x.wav") == b"x"


async def test_delete_is_idempotent(store: BlobStore) -> None:
    await store.put("d/x.wav", b"abc")
    await store.delete("d/x.wav")
    assert not await store.exists("d/x.wav")
    await store.delete("d/x.wav")
    await store.delete("never/was.wav")
    assert await store.list_keys() == []


async def test_list_by_prefix(store: BlobStore) -> None:
    keys = [
        "messages/example.com/alice/1.wav",
        "messages/example.com/alice/2.wav",
        "messages/example.com/alicia/3.wav",
        "messages/example.org/bob/4.wav",
        "greetings/example.com/alice/busy.wav",
    ]
    for k in keys:
        await store.put(k, k.encode())
    assert await store.list_keys() == sorted(keys)
    assert await store.list_keys("messages/example.com/alice/") == keys[:2]
    assert await store.list_keys("messages/example.com/ali") == keys[:3]
    assert await store.list_keys("greetings/") == [keys[4]]
    assert await store.list_keys("nothing/") == []


async def test_streamed_multipart_put_of_unknown_length(store: BlobStore) -> None:
    data = os.urandom(2 * PART_SIZE + 123_457)  # three parts on S3
    info = await store.put("big/upload.bin", chunks(data, 100_003), content_type="audio/wav")
    assert info.size == len(data)
    got = await store.get("big/upload.bin")
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert await store.get("big/upload.bin", PART_SIZE - 10, 20) == data[PART_SIZE - 10 :][:20]
    if isinstance(store, S3BlobStore):
        assert info.etag.endswith("-3"), f"expected a 3-part multipart ETag, got {info.etag}"
        assert await open_multipart_uploads(store) == []


async def test_put_from_file_objects(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(PART_SIZE + 5000)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    f = await asyncio.to_thread(path.open, "rb")
    try:
        await store.put("f/real-file.bin", f)
    finally:
        f.close()
    assert await store.get("f/real-file.bin") == data
    await store.put("f/bytesio.bin", io.BytesIO(b"small in memory"))
    assert await store.get("f/bytesio.bin") == b"small in memory"
    await store.put("f/empty.bin", io.BytesIO(b""))
    assert await store.get("f/empty.bin") == b""
    assert (await store.stat("f/empty.bin")).size == 0


async def test_presigned_get(store: BlobStore) -> None:
    await store.put("p/msg.wav", DATA, content_type="audio/wav")
    if not store.supports_presigned_urls:
        with pytest.raises(UnsupportedOperation):
            await store.presigned_get_url("p/msg.wav")
        return
    url = await store.presigned_get_url("p/msg.wav", timedelta(minutes=5))
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
        assert r.status_code == 200
        assert r.content == DATA
        assert r.headers["content-type"] == "audio/wav"
        partial = await http.get(url, headers={"Range": "bytes=10-19"})
        assert partial.status_code == 206
        assert partial.content == DATA[10:20]
    with pytest.raises(ValueError):
        await store.presigned_get_url("p/msg.wav", timedelta(days=8))


BAD_KEYS = [
    "",
    "..",
    ".",
    "../escape.wav",
    "a/../../escape.wav",
    "a/..",
    "a/./b",
    "/etc/passwd",
    "//server/share",
    "a//b",
    "a/",
    "a\\..\\b",
    "..\\escape",
    "a\x00b",
    "a\nb",
    "C:x",
    "with space",
    ".hidden",
    "a/.tmp-123",
    "a/.b.meta",
    "é",
    "x" * 256,
    "a/" * 600 + "b",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_cannot_escape(store: BlobStore, key: str, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    with pytest.raises(ValueError):
        await store.put(key, b"evil")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.stat(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        async for _ in store.stream(key):
            pass
    with pytest.raises((ValueError, UnsupportedOperation)):
        await store.presigned_get_url(key)
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert await store.list_keys() == []


async def test_failing_writer_leaves_nothing(store: BlobStore) -> None:
    data = os.urandom(PART_SIZE + PART_SIZE // 2)
    # New key: the writer dies after more than one part was sent.
    with pytest.raises(RuntimeError, match="producer died"):
        await store.put("atomic/new.bin", failing_writer(data, PART_SIZE + 1))
    assert not await store.exists("atomic/new.bin")
    assert await store.list_keys() == []
    # Existing key: the old content survives a failed overwrite.
    await store.put("atomic/old.bin", b"old content")
    with pytest.raises(RuntimeError, match="producer died"):
        await store.put("atomic/old.bin", failing_writer(data, 1))
    assert await store.get("atomic/old.bin") == b"old content"
    if isinstance(store, FileBlobStore):
        assert leftovers(store) == []
    else:
        assert isinstance(store, S3BlobStore)
        assert await open_multipart_uploads(store) == []


async def test_readers_never_see_a_partial_blob(store: BlobStore) -> None:
    await store.put("atomic/x.bin", b"old")
    new = os.urandom(PART_SIZE + 1000)
    writer = asyncio.create_task(store.put("atomic/x.bin", chunks(new, 256 * 1024, delay=0.005)))
    seen = set()
    for _ in range(200):
        if writer.done():
            break
        body = await store.get("atomic/x.bin")
        assert body in (b"old", new), f"partial read of {len(body)} bytes"
        seen.add(body == new)
        await asyncio.sleep(0.005)
    await asyncio.wait_for(writer, 30)
    assert False in seen  # we did read while the write was in progress
    assert await store.get("atomic/x.bin") == new


async def test_cancelled_put_leaves_nothing(store: BlobStore) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            started.set()
            yield os.urandom(64 * 1024)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(store.put("atomic/cancelled.bin", endless()))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The S3 upload thread notices the abort on its next read; give it a moment.
    for _ in range(50):
        if isinstance(store, FileBlobStore) or await open_multipart_uploads(store) == []:
            break
        await asyncio.sleep(0.1)
    assert not await store.exists("atomic/cancelled.bin")
    if isinstance(store, FileBlobStore):
        assert leftovers(store) == []
    else:
        assert isinstance(store, S3BlobStore)
        assert await open_multipart_uploads(store) == []


async def test_concurrent_puts_of_different_keys(store: BlobStore) -> None:
    bodies = {f"c/{i}.bin": os.urandom(1000 + i) for i in range(20)}
    await asyncio.gather(*(store.put(k, v) for k, v in bodies.items()))
    for k, v in bodies.items():
        assert await store.get(k) == v


async def test_list_sizes_gives_each_keys_size(store: BlobStore) -> None:
    await store.put("partial/s-00000.pcm", b"x" * 3200)
    await store.put("partial/s-00001.pcm", b"y" * 17)
    await store.put("partial/t-00000.pcm", b"z")
    assert await store.list_sizes("partial/s-") == {
        "partial/s-00000.pcm": 3200,
        "partial/s-00001.pcm": 17,
    }
    assert await store.list_sizes("nothing/") == {}
