"""``sipum-admin`` over the settings model and the new actions, in a subprocess against the real
PostgreSQL and NATS: every setting by name, ``default`` back to the built-in, bounds refused
with one line; ``domain.updated`` and ``user.updated`` (disabled/enabled) on the event stream."""

from __future__ import annotations

import asyncio
import json

from sipum.db import users
from sipum.events import DomainUpdated, EventBus, UserUpdated

from .test_admin_cli import admin_cli  # noqa: F401 - the fixture


async def test_settings_disable_and_their_events(admin_cli, pg_pool, event_bus: EventBus) -> None:  # noqa: F811
    seen: list[object] = []

    async def on_event(e: object) -> None:
        seen.append(e)

    await event_bus.subscribe(DomainUpdated, on_event, durable="cli-domain")
    await event_bus.subscribe(UserUpdated, on_event, durable="cli-user")

    def cli(*args: str, stdin: str = "", ok: bool = True):  # the subprocess, off the loop
        return asyncio.to_thread(admin_cli, *args, stdin=stdin, ok=ok)

    await cli("domain", "create", "voice.test")
    await cli("user", "create", "carol@voice.test", "--password-stdin", stdin="carol-pass-1\n")
    await cli(
        "domain", "set", "voice.test", "mail_from=Voicemail <vm@voice.test>",
        "time_zone=Europe/Berlin", "min_message_seconds=2.5", "pin_min_length=6",
    )  # fmt: skip
    done = await cli("--json", "domain", "list")
    [domain] = [d for d in json.loads(done.stdout) if d["name"] == "voice.test"]
    assert (domain["mail_from"], domain["time_zone"], domain["pin_min_length"]) == (
        "Voicemail <vm@voice.test>", "Europe/Berlin", 6,
    )  # fmt: skip
    bad = await cli("domain", "set", "voice.test", "time_zone=Atlantis/Capital", ok=False)
    assert bad.returncode != 0 and "IANA" in bad.stderr and "Traceback" not in bad.stderr
    bad = await cli("user", "set", "carol@voice.test", "mail_from=x@y.test", ok=False)
    assert bad.returncode != 0 and "mail_from" in bad.stderr
    await cli("domain", "set", "voice.test", "time_zone=default")
    await cli("user", "set", "carol@voice.test", "greeting_mode=system")
    await cli("user", "disable", "carol@voice.test")
    carol = await users.get_by_address(pg_pool, "carol", "voice.test")
    assert carol is not None and carol.disabled and carol.greeting_mode == "system"
    effective = await users.effective_settings(pg_pool, carol.id)
    assert effective is not None and effective.time_zone == "UTC"  # the built-in again
    await cli("user", "enable", "carol@voice.test")

    for _ in range(100):
        if len(seen) >= 5:
            break
        await asyncio.sleep(0.05)
    domain_changes = [e.changed for e in seen if isinstance(e, DomainUpdated)]
    assert domain_changes == [
        ["mail_from", "min_message_seconds", "pin_min_length", "time_zone"],
        ["time_zone"],
    ]
    user_changes = [e.changed for e in seen if isinstance(e, UserUpdated)]
    assert user_changes == [["greeting_mode"], ["disabled"], ["enabled"]]


async def test_domain_registrar_by_cli(admin_cli, pg_pool, event_bus: EventBus) -> None:  # noqa: F811
    """Each domain its registrar: set, shown, refused in a wrong form or on a user, reset."""
    seen: list[DomainUpdated] = []

    async def on_event(e: DomainUpdated) -> None:
        seen.append(e)

    await event_bus.subscribe(DomainUpdated, on_event, durable="cli-registrar")

    def cli(*args: str, stdin: str = "", ok: bool = True):  # the subprocess, off the loop
        return asyncio.to_thread(admin_cli, *args, stdin=stdin, ok=ok)

    await cli("domain", "create", "reg.test")
    await cli("user", "create", "dora@reg.test", "--password-stdin", stdin="dora-pass-12\n")
    await cli("domain", "set", "reg.test", "registrar=sip:kam.reg.test:5080;transport=udp")
    done = await cli("--json", "domain", "list")
    [domain] = [d for d in json.loads(done.stdout) if d["name"] == "reg.test"]
    assert domain["registrar"] == "sip:kam.reg.test:5080;transport=udp"
    bad = await cli("domain", "set", "reg.test", "registrar=sips:kam.reg.test", ok=False)
    assert bad.returncode != 0 and "registrar" in bad.stderr and "Traceback" not in bad.stderr
    bad = await cli("user", "set", "dora@reg.test", "registrar=kam.reg.test", ok=False)
    assert bad.returncode != 0 and "registrar" in bad.stderr
    await cli("domain", "set", "reg.test", "registrar=default")
    done = await cli("--json", "domain", "list")
    [domain] = [d for d in json.loads(done.stdout) if d["name"] == "reg.test"]
    assert domain["registrar"] is None
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [e.changed for e in seen if e.domain == "reg.test"] == [["registrar"], ["registrar"]]
