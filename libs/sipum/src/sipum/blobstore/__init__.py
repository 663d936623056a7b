"""Blob storage for message audio and greetings: one interface, two backends.

``open_blob_store(settings)`` picks S3 (minio SDK) when ``s3_endpoint`` is set, else the
filesystem store under ``blob_root`` (the embedded default). Call ``await store.check()`` at
start-up: it creates the bucket/root if missing and turns bad settings into ``ConfigError``.
See ``docs/blobstore.md``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from sipum.blobstore.base import (
    BlobInfo,
    BlobNotFoundError,
    BlobSource,
    BlobStore,
    UnsupportedOperation,
    validate_key,
)
from sipum.blobstore.fs import FileBlobStore
from sipum.blobstore.keys import (
    greeting_key,
    mailbox_prefix,
    message_key,
    partial_recording_key,
    peaks_key,
)
from sipum.blobstore.s3 import S3BlobStore
from sipum.errors import ConfigError

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobSource",
    "BlobStore",
    "FileBlobStore",
    "S3BlobStore",
    "UnsupportedOperation",
    "greeting_key",
    "mailbox_prefix",
    "message_key",
    "peaks_key",
    "open_blob_store",
    "partial_recording_key",
    "validate_key",
]

# S3 bucket naming rules (no dots: they break virtual-host TLS).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]")


def _secret(value: Any) -> str:
    """A pydantic ``SecretStr`` or a plain string (or None) as a string."""
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """``host[:port]`` or ``http(s)://host[:port]`` → (``host:port``, secure)."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"}:
            raise ConfigError("s3_endpoint", f"scheme must be http or https: {endpoint!r}")
        if parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ConfigError("s3_endpoint", f"must not have a path: {endpoint!r}")
        if not parts.hostname:
            raise ConfigError("s3_endpoint", f"has no host: {endpoint!r}")
        return parts.netloc.rsplit("@", 1)[-1], parts.scheme == "https"
    if "/" in endpoint or not endpoint.strip():
        raise ConfigError("s3_endpoint", f"expected host[:port] or a URL: {endpoint!r}")
    return endpoint, secure


def open_blob_store(settings: Any) -> BlobStore:
    """The store the settings describe (any object with the ``s3_*``/``blob_root`` attributes).

    Nothing is contacted here; ``await store.check()`` does that.
    """
    endpoint = getattr(settings, "s3_endpoint", None)
    if endpoint:
        host, secure = parse_endpoint(str(endpoint), bool(getattr(settings, "s3_secure", False)))
        access_key = _secret(getattr(settings, "s3_access_key", None))
        secret_key = _secret(getattr(settings, "s3_secret_key", None))
        if not access_key:
            raise ConfigError("s3_access_key", "required when s3_endpoint is set")
        if not secret_key:
            raise ConfigError("s3_secret_key", "required when s3_endpoint is set")
        bucket = str(getattr(settings, "s3_bucket", None) or "sipum")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(
                "s3_bucket",
                f"{bucket!r} is not a valid bucket name (3-63 of a-z 0-9 -, no dots)",
            )
        region = getattr(settings, "s3_region", None) or None
        return S3BlobStore(
            endpoint=host,
            access_key=access_key,
            secret_key=secret_key,
            bucket=bucket,
            secure=secure,
            region=str(region) if region else None,
        )
    root = getattr(settings, "blob_root", None)
    if not root:
        raise ConfigError("blob_root", "set blob_root (a directory) or s3_endpoint")
    return FileBlobStore(root)
