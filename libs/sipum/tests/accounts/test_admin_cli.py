"""``sipum-admin`` as an operator runs it: the console script in a subprocess against the real
PostgreSQL and NATS, passwords on stdin, JSON output for scripts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import messages, users

CLI = str(Path(sys.executable).parent / "sipum-admin")


@pytest.fixture
def admin_cli(pg_dsn: str, event_namespace, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
    env.update(
        SIPUM_DATABASE_URL=pg_dsn,
        SIPUM_NATS_URL=event_namespace.url,
        SIPUM_EVENTS_PREFIX=event_namespace.prefix,
        SIPUM_EVENTS_STREAM=event_namespace.stream,
        SIPUM_BLOB_ROOT=str(tmp_path / "blobs"),
    )

    def run(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CLI, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    return run


def test_create_admin_domain_users_overrides_and_report(admin_cli) -> None:
    done = admin_cli(
        "--json", "create-admin", "root", "--password-stdin", stdin="admin-password-1\n"
    )
    assert json.loads(done.stdout)["username"] == "root"
    bad = admin_cli(
        "create-admin", "root", "--password-stdin", stdin="admin-password-1\n", ok=False
    )
    assert bad.returncode == 1 and "exists" in bad.stderr and "Traceback" not in bad.stderr
    admin_cli("domain", "create", "voice.test", "ring_timeout_seconds=5", "max_messages=10")
    admin_cli(
        "user",
        "create",
        "carol@voice.test",
        "--email",
        "c@mail.test",
        "--password-stdin",
        stdin="carol-password-1\n",
    )  # noqa: E501
    admin_cli("user", "set", "carol@voice.test", "ring_timeout_seconds=20")
    users_json = json.loads(admin_cli("--json", "user", "list", "--domain", "voice.test").stdout)
    [carol] = users_json["items"]
    assert carol["username"] == "carol" and carol["ring_timeout_seconds"] == 20
    assert "ha1" not in carol and "password_hash" not in json.dumps(users_json)
    admin_cli("user", "set", "carol@voice.test", "ring_timeout_seconds=default")
    carol = json.loads(admin_cli("--json", "user", "list", "-q", "carol").stdout)["items"][0]
    assert carol["ring_timeout_seconds"] is None  # back to the domain's 5
    bad = admin_cli("user", "set", "carol@voice.test", "ring_timeout_seconds=9999", ok=False)
    assert bad.returncode == 1 and "0 to 300" in bad.stderr
    [quota] = json.loads(admin_cli("--json", "quota", "--domain", "voice.test").stdout)
    assert quota["max_messages"] == 10 and quota["percent"] == 0.0
    status = json.loads(admin_cli("--json", "status").stdout)
    assert status["users"] == 1 and status["domains"] >= 1


def test_import_users_reports_each_row(admin_cli, tmp_path: Path) -> None:
    admin_cli("domain", "create", "voice.test")
    sheet = tmp_path / "users.csv"
    with sheet.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["address", "password", "email", "display_name", "pin"])
        w.writerow(["dan@voice.test", "dan-password-1", "d@mail.test", "Dan", "97531"])
        w.writerow(["eve@voice.test", "short", "", "", ""])
        w.writerow(["fay@nowhere.test", "fay-password-1", "", "", ""])
    done = admin_cli("--json", "import-users", str(sheet), ok=False)
    assert done.returncode == 1
    results = json.loads(done.stdout)
    assert [r["result"].split(":")[0] for r in results] == ["created", "error", "error"]
    listed = json.loads(admin_cli("--json", "user", "list", "--domain", "voice.test").stdout)
    assert [u["username"] for u in listed["items"]] == ["dan"]


async def test_export_a_mailbox_as_a_zip(admin_cli, pg_pool, tmp_path: Path) -> None:
    from sipum.db import domains

    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice-password-1")
    blobs = FileBlobStore(tmp_path / "blobs")
    for n in range(2):
        mid = await messages.allocate_id(pg_pool)
        key = message_key("example.com", "alice", mid)
        await blobs.put(key, b"RIFF" + bytes([n]) * 100)
        await messages.insert_idempotent(
            pg_pool, owner_id=alice.id, idempotency_key=f"x{mid}", caller_uri="sip:b@x",
            caller_display_name="B", called_uri="sip:alice@example.com", duration_ms=1000,
            codec="PCMU", size_bytes=104, blob_key=key, message_id=mid,
        )  # fmt: skip
    out = tmp_path / "alice.zip"
    done = admin_cli("--json", "export", "alice@example.com", str(out))
    assert json.loads(done.stdout)["messages"] == 2
    with zipfile.ZipFile(out) as archive:
        meta = json.loads(archive.read("messages.json"))
        assert meta["mailbox"] == "alice@example.com" and len(meta["messages"]) == 2
        for m in meta["messages"]:
            assert archive.read(m["file"]).startswith(b"RIFF")


async def test_unlock_lifts_a_phone_pin_lockout(admin_cli, pg_pool) -> None:
    from datetime import UTC, datetime

    from sipum.db import domains, pin_lockouts
    from sipum.security.pin_lockout import LockoutPolicy

    await domains.ensure(pg_pool, "voice.test")
    dan = await users.create(pg_pool, "dan", "voice.test", "dan-password-1", pin="2468")
    policy = LockoutPolicy(max_failures=1)
    assert (await pin_lockouts.add_failure(pg_pool, dan.id, datetime.now(UTC), policy)).newly_locked
    done = admin_cli("user", "unlock", "dan@voice.test")
    assert "dan@voice.test: unlocked (was locked until" in done.stdout
    assert not (await pin_lockouts.get(pg_pool, dan.id)).locked(datetime.now(UTC))
    again = json.loads(admin_cli("--json", "user", "unlock", "dan@voice.test").stdout)
    assert again["was_locked"] is False and again["address"] == "dan@voice.test"
    missing = admin_cli("user", "unlock", "nobody@voice.test", ok=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
