"""Backend-specific behaviour: health checks, configuration errors, filesystem layout."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from minio import Minio
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore, S3BlobStore, open_blob_store
from sipum.errors import ConfigError
from sipum_testing.s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoAuthServer,
    MotoServer,
    free_port,
    remove_bucket,
)


def settings(**overrides: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "s3_endpoint": None,
        "s3_access_key": None,
        "s3_secret_key": None,
        "s3_bucket": "sipum",
        "s3_secure": False,
        "s3_region": None,
        "blob_root": None,
    }
    base.update(overrides)
    return SimpleNamespace(**base)


# -- factory ---------------------------------------------------------------------------------


def test_factory_defaults_to_filesystem(tmp_path: Path) -> None:
    store = open_blob_store(settings(blob_root=str(tmp_path / "b")))
    assert isinstance(store, FileBlobStore)
    assert store.root == tmp_path.resolve() / "b"


def test_factory_builds_s3_from_url_or_host() -> None:
    store = open_blob_store(
        settings(
            s3_endpoint="https://minio.internal:9000",
            s3_access_key=SecretStr("ak"),
            s3_secret_key=SecretStr("sk"),
            s3_bucket="voice",
        )
    )
    assert isinstance(store, S3BlobStore)
    assert (store.endpoint, store.secure, store.bucket) == ("minio.internal:9000", True, "voice")
    plain = open_blob_store(
        settings(s3_endpoint="minio:9000", s3_access_key="a", s3_secret_key="b", s3_secure=False)
    )
    assert isinstance(plain, S3BlobStore)
    assert (plain.endpoint, plain.secure) == ("minio:9000", False)


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"blob_root": None}, "blob_root"),
        ({"s3_endpoint": "http://m:9000", "s3_secret_key": "x"}, "s3_access_key"),
        ({"s3_endpoint": "http://m:9000", "s3_access_key": "x"}, "s3_secret_key"),
        ({"s3_endpoint": "http://m:9000/path", "s3_access_key": "a", "s3_secret_key": "b"}, "s3_endpoint"),
        ({"s3_endpoint": "ftp://m:9000", "s3_access_key": "a", "s3_secret_key": "b"}, "s3_endpoint"),
        ({"s3_endpoint": "m:9000", "s3_access_key": "a", "s3_secret_key": "b", "s3_bucket": "Bad_Name"}, "s3_bucket"),
    ],
)  # fmt: skip
def test_factory_rejects_bad_settings(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_blob_store(settings(**overrides))
    assert err.value.setting == setting
    assert "\n" not in str(err.value)


# -- filesystem ------------------------------------------------------------------------------


async def test_fs_check_creates_root(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "new" / "root")
    await store.check()
    assert (tmp_path / "new" / "root").is_dir()
    assert list((tmp_path / "new" / "root").iterdir()) == []


async def test_fs_check_unusable_root(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    store = FileBlobStore(tmp_path / "a-file" / "blobs")
    with pytest.raises(ConfigError) as err:
        await store.check()
    assert err.value.setting == "blob_root"
    assert "a-file" in str(err.value)


async def test_fs_layout_and_metadata(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    await store.put("messages/example.com/alice/7.wav", b"RIFF", content_type="audio/wav")
    assert (tmp_path / "messages/example.com/alice/7.wav").read_bytes() == b"RIFF"
    # The metadata sidecar is invisible to listings and cannot be addressed as a key.
    assert await store.list_keys() == ["messages/example.com/alice/7.wav"]
    await store.delete("messages/example.com/alice/7.wav")
    assert sorted(os.listdir(tmp_path / "messages/example.com/alice")) == []


async def test_fs_symlink_inside_root_cannot_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = FileBlobStore(root)
    with pytest.raises(ValueError):
        await store.put("link/x.wav", b"evil")
    with pytest.raises(ValueError):
        await store.get("link/x.wav")
    assert list(outside.iterdir()) == []


async def test_fs_root_given_through_a_symlink_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    store = FileBlobStore(tmp_path / "alias")
    await store.put("a/b.wav", b"ok")
    assert (real / "a" / "b.wav").read_bytes() == b"ok"


# -- S3 --------------------------------------------------------------------------------------


async def test_s3_check_creates_missing_bucket(moto_server: MotoServer) -> None:
    bucket = f"created-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    store = S3BlobStore(
        endpoint=moto_server.endpoint,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=bucket,
        region=REGION,
    )
    client = Minio(moto_server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False, region=REGION)
    try:
        assert not client.bucket_exists(bucket)
        await store.check()
        assert client.bucket_exists(bucket)
        await store.check()  # idempotent
        await store.put("x.wav", b"1")
        assert await store.get("x.wav") == b"1"
    finally:
        await store.close()
        remove_bucket(moto_server, bucket)


async def test_s3_from_settings(s3_settings: SimpleNamespace) -> None:
    store = open_blob_store(s3_settings)
    await store.check()
    await store.put("k.wav", b"data")
    assert await store.get("k.wav", 1, 2) == b"at"
    await store.close()


async def test_s3_unreachable_endpoint_is_a_config_error() -> None:
    port = free_port()  # nothing listens there
    store = S3BlobStore(
        endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b", bucket="sipum", region=REGION
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        await store.check()
    await store.close()
    assert err.value.setting == "s3_endpoint"
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "\n" not in str(err.value)
    assert time.monotonic() - started < 10


async def test_s3_endpoint_that_is_not_s3(tmp_path: Path) -> None:
    # A plain HTTP server that is not S3 (moto's own management API would be S3): use a
    # socket that answers every request with garbage HTML.
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        body = b"<html>hello</html>"
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = S3BlobStore(
        endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b", bucket="sipum", region=REGION
    )
    try:
        with pytest.raises(ConfigError) as err:
            await store.check()
        assert err.value.setting in {"s3_endpoint", "s3_bucket"}
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


async def test_s3_credentials(moto_auth_server: MotoAuthServer) -> None:
    """moto with IAM auth on: good keys work, a wrong secret or an unknown key id are named."""
    endpoint = moto_auth_server.server.endpoint
    bucket = f"auth-{time.monotonic_ns() % 10**12}"

    def make(access_key: str, secret_key: str) -> S3BlobStore:
        return S3BlobStore(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            bucket=bucket,
            region=REGION,
        )

    good = make(moto_auth_server.access_key, moto_auth_server.secret_key)
    await good.check()
    await good.put("x.wav", b"ok")
    assert await good.get("x.wav") == b"ok"
    await good.delete("x.wav")
    await good.close()

    wrong_secret = make(moto_auth_server.access_key, "not-the-secret")
    with pytest.raises(ConfigError) as err:
        await wrong_secret.check()
    await wrong_secret.close()
    assert err.value.setting == "s3_secret_key"
    assert "not-the-secret" not in str(err.value)

    unknown = make("AKIANOSUCHKEY0000000", "whatever")
    with pytest.raises(ConfigError) as err:
        await unknown.check()
    await unknown.close()
    assert err.value.setting == "s3_access_key"
    assert "does not know this access key" in str(err.value)


async def test_fs_key_that_is_also_a_prefix(tmp_path: Path) -> None:
    """S3 allows both ``a`` and ``a/b``; a filesystem cannot, and says so."""
    store = FileBlobStore(tmp_path)
    await store.put("a/b", b"file")
    with pytest.raises(ValueError, match="conflicts"):
        await store.put("a/b/c", b"x")
    with pytest.raises(ValueError, match="conflicts"):
        await store.put("a", b"x")
    assert await store.get("a/b") == b"file"
    assert await store.list_keys() == ["a/b"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".b.meta", "b"]


async def test_unique_bucket_is_removed_with_its_objects(moto_server: MotoServer) -> None:
    from sipum_testing.s3 import unique_bucket

    client = Minio(moto_server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False, region=REGION)
    with unique_bucket(moto_server) as bucket:
        store = S3BlobStore(
            endpoint=moto_server.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            bucket=bucket,
            region=REGION,
        )
        await store.put("a/b.wav", b"x")
        await store.put("c.wav", b"y")
        await store.close()
        assert client.bucket_exists(bucket)
    assert not client.bucket_exists(bucket)
