"""``sipum-admin``: the administrator's command line, over the same service layer as the admin
REST API (``sipum.accounts.admin``), for operators without a browser.

It reads the usual settings (``SIPUM_DATABASE_URL``, ``SIPUM_NATS_URL``, the blob store's,
``SIPUM_EVENTS_*``) from the environment. ``--json`` prints machine-readable output. Passwords
are read from a prompt (hidden) or, for scripts, one line of stdin (``--password-stdin``) —
never from the command line, where other users of the machine could read them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from sipum.accounts import admin
from sipum.blobstore import BlobStore, open_blob_store
from sipum.config import ServiceSettings
from sipum.db import admins, messages, open_database
from sipum.db.admins import AdminExistsError
from sipum.errors import ConfigError
from sipum.events import EventBus, EventBusError
from sipum.security.passwords import WeakSecretError

app = typer.Typer(
    help="Administer sipum: domains, users, quotas.", no_args_is_help=True,
    pretty_exceptions_enable=False,
)  # fmt: skip
domain_app = typer.Typer(help="Domains and their defaults.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their overrides.", no_args_is_help=True)
app.add_typer(domain_app, name="domain")
app.add_typer(user_app, name="user")
T = TypeVar("T")
DEREGISTER_WAIT = 3.0


@dataclass
class Options:
    as_json: bool = False


OPTIONS = Options()


@app.callback()
def _global(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    OPTIONS.as_json = as_json


@dataclass
class Backends:
    pool: Any
    bus: EventBus
    blobs: BlobStore


@asynccontextmanager
async def backends(*, need_bus: bool = True) -> AsyncIterator[Backends]:
    settings = ServiceSettings()
    pool = await open_database(settings.database_url)
    bus: Any = None
    try:
        if need_bus:
            bus = await EventBus.connect(
                settings.nats_url, "sipum-admin", prefix=settings.events_prefix,
                stream=settings.events_stream,
            )  # fmt: skip
            await bus.ensure_stream(replicas=settings.stream_replicas)
        yield Backends(pool, bus, open_blob_store(settings))
    finally:
        if bus is not None:
            await bus.close()
        await pool.close()


def run(work: Callable[[Backends], Awaitable[T]], *, need_bus: bool = True) -> T:
    async def main() -> T:
        async with backends(need_bus=need_bus) as b:
            return await work(b)

    try:
        return asyncio.run(main())
    except (
        admin.AdminError, AdminExistsError, WeakSecretError, ValueError, ConfigError, EventBusError,
    ) as exc:  # fmt: skip
        typer.echo(f"sipum-admin: error: {exc}", err=True)
        raise typer.Exit(1) from None


def parse_settings(assignments: list[str] | None) -> dict[str, Any]:
    """NAME=VALUE arguments; a bad one ends the command with one line on stderr (exit 1)."""
    try:
        return dict(admin.parse_setting(a) for a in assignments or [])
    except admin.Invalid as exc:
        typer.echo(f"sipum-admin: error: {exc}", err=True)
        raise typer.Exit(1) from None


def plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        data = {
            k: plain(v)
            for k, v in asdict(value).items()
            if k not in ("ha1", "ha1b", "ha1_sha256", "password_hash")
        }  # noqa: E501
        if isinstance(value, admin.QuotaLine):
            data["percent"] = value.percent
        return data
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, (int, str)):
        return value.value
    return value


def show(value: Any, lines: Callable[[], list[str]]) -> None:
    if OPTIONS.as_json:
        typer.echo(json.dumps(plain(value), indent=2, default=str))
    else:
        for line in lines():
            typer.echo(line)


def read_password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read it from stdin")]


@app.command("create-admin")
def create_admin(name: str, password_stdin: PasswordStdin = False) -> None:
    """Create an administrator (there is no default one)."""
    password = read_password(password_stdin)
    created = run(lambda b: admins.create(b.pool, name, password), need_bus=False)
    show(
        {"id": created.id, "username": created.username},
        lambda: [f"administrator {created.username} created"],
    )


# -- domains ---------------------------------------------------------------------------------


@domain_app.command("list")
def domain_list() -> None:
    from sipum.db import domains

    found = run(lambda b: domains.list_all(b.pool), need_bus=False)
    show(
        found,
        lambda: [
            f"{d.name}\tring {d.ring_timeout_seconds}s\tquota {d.quota_bytes}\tmax {d.max_messages} messages of {d.max_message_seconds}s"
            for d in found
        ],
    )  # noqa: E501


Assignments = Annotated[list[str] | None, typer.Argument(help="NAME=VALUE settings")]


@domain_app.command("create")
def domain_create(name: str, settings: Assignments = None) -> None:
    """Create a domain, with defaults such as ring_timeout_seconds=5."""
    values = parse_settings(settings)
    created = run(lambda b: admin.create_domain(b.pool, name, **values), need_bus=False)
    show(created, lambda: [f"domain {created.name} created"])


@domain_app.command("set")
def domain_set(name: str, settings: Assignments = None) -> None:
    """Change a domain's defaults: NAME=VALUE ... (NAME=default: back to the built-in, for the
    settings that may be unset)."""
    values = parse_settings(settings)
    updated = run(lambda b: admin.update_domain(b.pool, name, bus=b.bus, **values))
    show(
        updated,
        lambda: [
            f"domain {updated.name}: " + ", ".join(f"{k}={getattr(updated, k)}" for k in values)
        ],
    )


@domain_app.command("delete")
def domain_delete(
    name: str,
    with_users: Annotated[
        bool, typer.Option("--with-users", help="delete its mailboxes too")
    ] = False,
) -> None:
    count = run(
        lambda b: admin.delete_domain(
            b.pool, b.bus, b.blobs, name, with_users=with_users, deregister_wait=DEREGISTER_WAIT
        )  # noqa: E501
    )
    show({"deleted_users": count}, lambda: [f"domain {name} deleted ({count} mailboxes)"])


# -- users -----------------------------------------------------------------------------------


@user_app.command("list")
def user_list(
    domain: Annotated[str | None, typer.Option()] = None,
    search: Annotated[str | None, typer.Option("--search", "-q")] = None,
    limit: int = 50,
    offset: int = 0,
) -> None:
    page = run(
        lambda b: admin.list_users(
            b.pool, domain=domain, search=search, limit=limit, offset=offset
        ),
        need_bus=False,
    )  # noqa: E501
    show(
        {"items": page.items, "total": page.total},
        lambda: (
            [f"{u.address}\t{u.display_name}\t{u.email or ''}" for u in page.items]
            + [f"({page.total} in all)"]
        ),
    )  # noqa: E501


@user_app.command("create")
def user_create(
    address: str,
    email: Annotated[str | None, typer.Option()] = None,
    display_name: Annotated[str, typer.Option()] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    password = read_password(password_stdin)
    user = run(
        lambda b: admin.create_user(
            b.pool, b.bus, address, password, email=email, display_name=display_name
        )
    )  # noqa: E501
    show(user, lambda: [f"{user.address} created"])


@user_app.command("set")
def user_set(address: str, settings: Assignments = None) -> None:
    """Override settings for one user: NAME=VALUE, or NAME=default to return to the domain's."""
    values = parse_settings(settings)
    user = run(lambda b: admin.update_overrides(b.pool, b.bus, address, values))
    show(
        user,
        lambda: [
            f"{user.address}: "
            + ", ".join(f"{k}={v if v is not None else 'default'}" for k, v in values.items())
        ],
    )  # noqa: E501


@user_app.command("reset-password")
def user_reset_password(address: str, password_stdin: PasswordStdin = False) -> None:
    password = read_password(password_stdin, "New password")
    run(lambda b: admin.reset_password(b.pool, b.bus, address, password))
    show({"address": address}, lambda: [f"{address}: password changed"])


@user_app.command("reset-pin")
def user_reset_pin(
    address: str,
    remove: Annotated[bool, typer.Option("--remove", help="no PIN at all")] = False,
    pin_stdin: Annotated[bool, typer.Option("--pin-stdin")] = False,
) -> None:
    pin = None if remove else read_password(pin_stdin, "New PIN")
    run(lambda b: admin.reset_pin(b.pool, b.bus, address, pin))
    show(
        {"address": address}, lambda: [f"{address}: PIN {'removed' if pin is None else 'changed'}"]
    )


@user_app.command("disable")
def user_disable(address: str) -> None:
    """No sign-in, voicemail contact de-registered, callers get 480; nothing is deleted."""
    user = run(lambda b: admin.set_disabled(b.pool, b.bus, address, True))
    show(user, lambda: [f"{user.address} disabled"])


@user_app.command("enable")
def user_enable(address: str) -> None:
    user = run(lambda b: admin.set_disabled(b.pool, b.bus, address, False))
    show(user, lambda: [f"{user.address} enabled"])


@user_app.command("unlock")
def user_unlock(address: str) -> None:
    """Lift the mailbox's phone PIN lockout and forget its wrong PINs."""
    result = run(lambda b: admin.unlock(b.pool, address))
    show(
        result,
        lambda: [
            f"{result.address}: unlocked (was locked until {result.locked_until:%Y-%m-%d %H:%M:%S %Z})"
            if result.was_locked and result.locked_until is not None
            else f"{result.address}: not locked ({result.failures} wrong PINs forgotten)"
        ],
    )


@user_app.command("delete")
def user_delete(address: str) -> None:
    removal = run(
        lambda b: admin.delete_user(
            b.pool, b.bus, b.blobs, address, deregister_wait=DEREGISTER_WAIT
        )
    )  # noqa: E501
    show(removal, lambda: [f"{address} deleted ({removal.blobs_deleted} blobs)"])


# -- bulk and reports ------------------------------------------------------------------------


@app.command("import-users")
def import_users(path: Path) -> None:
    """Create users from a CSV file with the header address,password[,email,display_name,pin].
    Each row is created (or reported) on its own; the file is not a transaction."""
    rows = list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))

    async def work(b: Backends) -> list[dict[str, str]]:
        results = []
        for n, row in enumerate(rows, start=2):
            address = (row.get("address") or "").strip()
            try:
                await admin.create_user(
                    b.pool, b.bus, address, row.get("password") or "", email=row.get("email") or None,
                    display_name=row.get("display_name") or "", pin=row.get("pin") or None,
                )  # fmt: skip
                results.append({"line": str(n), "address": address, "result": "created"})
            except admin.AdminError as exc:
                results.append({"line": str(n), "address": address, "result": f"error: {exc}"})
        return results

    results = run(work)
    show(results, lambda: [f"line {r['line']}: {r['address']}: {r['result']}" for r in results])
    if any(r["result"] != "created" for r in results):
        raise typer.Exit(1)


@app.command("export")
def export(address: str, out: Path) -> None:
    """A mailbox as a zip: messages.json (metadata) and every message's WAV."""

    async def work(b: Backends) -> int:
        user = await admin.user_by_address(b.pool, address)
        items = await messages.list_for_user(b.pool, user.id, None, limit=100_000)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            meta = []
            for m in items:
                name = f"{m.folder.value}/{m.id}.wav"
                archive.writestr(name, await b.blobs.get(m.blob_key))
                meta.append({**plain(m), "file": name})
            archive.writestr(
                "messages.json",
                json.dumps({"mailbox": user.address, "messages": meta}, indent=2, default=str),
            )  # noqa: E501
        return len(items)

    count = run(work, need_bus=False)
    show({"messages": count, "file": str(out)}, lambda: [f"{address}: {count} messages in {out}"])


@app.command("quota")
def quota(domain: Annotated[str | None, typer.Option()] = None) -> None:
    lines = run(lambda b: admin.quota_report(b.pool, domain=domain), need_bus=False)
    show(
        lines,
        lambda: [
            f"{q.percent:5.1f}%\t{q.username}@{q.domain}\t{q.messages}/{q.max_messages} messages\t{q.bytes}/{q.quota_bytes} bytes"
            for q in lines
        ],
    )  # noqa: E501


@app.command("status")
def status() -> None:
    s = run(lambda b: admin.system_status(b.pool, b.bus))
    show(
        s,
        lambda: (
            [
                f"{s.domains} domains, {s.users} users, {s.messages} messages; stream {s.stream}: {s.stream_events} events"
            ]
            + [
                f"  consumer {c.name}: {c.pending} pending, {c.unacknowledged} unacknowledged"
                for c in s.consumers
            ]
        ),
    )  # noqa: E501


def main() -> None:
    app(prog_name="sipum-admin")
