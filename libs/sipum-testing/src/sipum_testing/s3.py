"""pytest fixtures: a real S3 endpoint (``moto_server``) for the S3 blob store.

* ``moto_server`` (session): a ``moto_server`` subprocess on a free loopback port; it keeps
  data in memory and checks no signatures. Stopped by PID at the end of the session.
* ``s3_bucket``: a uniquely named, empty bucket on it, removed (with its objects) after the test.
* ``s3_settings``: settings-like object (``s3_endpoint``, ``s3_access_key``, ``s3_secret_key``,
  ``s3_bucket``, ``s3_secure``, ``s3_region``, ``blob_root``) for ``open_blob_store``.
* ``moto_auth_server`` (session): a second moto_server that *does* check credentials (IAM
  auth switched on after it created one user); gives the endpoint and that user's keys, so
  tests can see what wrong keys really do.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import IO

import pytest

REGION = "us-east-1"
ACCESS_KEY = "sipum-test"
SECRET_KEY = "sipum-test-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MotoServer:
    host: str
    port: int
    pid: int

    @property
    def endpoint(self) -> str:
        """``host:port`` as the minio SDK wants it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class MotoAuthServer:
    server: MotoServer
    access_key: str
    secret_key: str


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def _start_moto(
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int, IO[bytes]]:
    log = tempfile.TemporaryFile()
    last_error = ""
    for _attempt in range(3):  # the chosen port may be taken between probe and bind
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers(port):
                return proc, port, log
            time.sleep(0.1)
        log.seek(0)
        last_error = log.read()[-2000:].decode(errors="replace")
        _stop(proc)
    raise RuntimeError(f"moto_server did not start: {last_error}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    """A moto_server on a free loopback port, stopped by PID at the end (for benchmarks; tests
    take the session's :func:`moto_server` fixture)."""
    proc, port, log = _start_moto()
    try:
        yield MotoServer(host="127.0.0.1", port=port, pid=proc.pid)
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with running_moto_server() as server:
        yield server


def _minio(server: MotoServer, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):  # type: ignore[no-untyped-def]
    from minio import Minio

    return Minio(
        server.endpoint, access_key=access_key, secret_key=secret_key, secure=False, region=REGION
    )


def remove_bucket(server: MotoServer, bucket: str) -> None:
    """Delete a bucket and everything in it (no error if it is gone already)."""
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    client = _minio(server)
    try:
        objects = [
            DeleteObject(o.object_name)
            for o in client.list_objects(bucket, recursive=True)
            if o.object_name
        ]
        for err in client.remove_objects(bucket, objects):
            raise RuntimeError(f"could not delete {err.name}: {err.message}")
        client.remove_bucket(bucket)
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            raise


@contextlib.contextmanager
def unique_bucket(server: MotoServer) -> Iterator[str]:
    """A new, uniquely named bucket; removed with everything in it at the end."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    _minio(server).make_bucket(name)
    try:
        yield name
    finally:
        remove_bucket(server, name)


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> Iterator[str]:
    with unique_bucket(moto_server) as name:
        yield name


@pytest.fixture
def s3_settings(moto_server: MotoServer, s3_bucket: str) -> SimpleNamespace:
    return SimpleNamespace(
        s3_endpoint=moto_server.url,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
        s3_bucket=s3_bucket,
        s3_secure=False,
        s3_region=REGION,
        blob_root=None,
    )


@pytest.fixture(scope="session")
def moto_auth_server() -> Iterator[MotoAuthServer]:
    # moto enforces IAM auth once this many requests have been served without it: just
    # enough to create a user, its key and its policy.
    proc, port, log = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="sipum")
        key = iam.create_access_key(UserName="sipum")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="sipum", PolicyName="s3", PolicyDocument=json.dumps(policy))
        yield MotoAuthServer(
            server=MotoServer(host="127.0.0.1", port=port, pid=proc.pid),
            access_key=key["AccessKeyId"],
            secret_key=key["SecretAccessKey"],
        )
    finally:
        _stop(proc)
        log.close()
