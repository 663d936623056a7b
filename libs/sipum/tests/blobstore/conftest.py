"""The ``store`` fixture: every test taking it runs once per backend (fs, s3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sipum.blobstore import BlobStore, FileBlobStore, S3BlobStore
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

# Small parts so the multipart path is exercised by a few MB.
PART_SIZE = 5 * 1024 * 1024


@pytest.fixture(params=["fs", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "fs":
        backend: BlobStore = FileBlobStore(tmp_path / "blobs")
    else:
        server: MotoServer = request.getfixturevalue("moto_server")
        bucket: str = request.getfixturevalue("s3_bucket")
        backend = S3BlobStore(
            endpoint=server.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            bucket=bucket,
            region=REGION,
            part_size=PART_SIZE,
        )
    await backend.check()
    try:
        yield backend
    finally:
        await backend.close()
