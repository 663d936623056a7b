"""The liveness link between a real media-recorder and the registrar-agent's ``RecorderWatch``:
a recorder process SIGKILLed is known gone within 0.2 s (not the heartbeats' 1.5 s), a clean
stop (SIGTERM drain with a call in progress) is no crash, a replica that only goes silent (its
link stays open: a partition) still takes the heartbeats' ``dead_after``, a link that breaks
while its replica lives is probed and opened again, a restarted replica is linked again, and a
replica over its link limit is not taken for dead."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from sipum.events import RecorderHeartbeat
from sipum.events.liveness import format_link
from sipum_media_recorder.liveness import LinkListener
from sipum_registrar_agent.recorders import RecorderWatch

from .test_crash_recovery import first_call, prompt_dir, recorder_process  # noqa: F401

pytestmark = pytest.mark.timeout(90)


class Lost:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.event = asyncio.Event()

    def __call__(self, call: str, recorder_id: str) -> None:
        self.calls.append((call, recorder_id, asyncio.get_running_loop().time()))
        self.event.set()


async def until(predicate: Any, limit: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_sigkilled_recorder_is_known_gone_within_200_ms_and_relinked_when_back(
    world: Any,
    pg_dsn: str,
    tmp_path: Path,
    prompt_dir: Path,  # noqa: F811
) -> None:
    log = tmp_path / "recorder.log"
    proc = recorder_process(world, pg_dsn, prompt_dir, log, SIPUM_RECORDER_ID="crashy")
    agent_bus = await world.namespace.connect("agent")
    lost = Lost()
    watch: RecorderWatch[str] = RecorderWatch(agent_bus, on_lost=lost, unknown_after=2.0)
    await watch.start()
    loop = asyncio.get_running_loop()
    caller = await world.caller()
    try:
        reply = await first_call(caller, proc, log)
        assert reply.recorder_id == "crashy"
        assert watch.links is not None
        links = watch.links
        await until(lambda: links.state("crashy") == "open", 5, "never linked")
        watch.watch("call-1", "crashy")
        proc.send_signal(signal.SIGKILL)
        killed = loop.time()
        await asyncio.wait_for(lost.event.wait(), 5)
        took = lost.calls[0][2] - killed
        print(f"\nSIGKILL → agent knows: {took * 1000:.1f} ms")
        assert lost.calls == [("call-1", "crashy", lost.calls[0][2])]
        assert took < 0.2, took
        assert not watch.tracker.alive("crashy", watch.now())
        proc.wait(5)
        # the heartbeats' deadline later reports nothing twice
        await asyncio.sleep(1.8)
        assert len(lost.calls) == 1
        # the replica comes back (same id, another process and port): linked again
        again = await world.start_recorder(recorder_id="crashy")
        await until(lambda: links.state("crashy") == "open", 5, "not linked again")
        assert watch.tracker.alive("crashy", watch.now())
        watch.watch("call-2", "crashy")
        # a clean stop holding a call: "draining", then the link closes — no crash
        session = await caller.allocate(caller.request(call_id="second-call"))
        assert session.recorder_id == "crashy"
        await again.stop_accepting()
        await until(lambda: links.state("crashy") == "draining", 2, "draining not seen")
        await asyncio.wait_for(again.drain(), 10)
        world.services.remove(again)
        await until(lambda: links.state("crashy") is None, 2, "link not closed")
        await asyncio.sleep(0.3)
        assert len(lost.calls) == 1, lost.calls
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        caller.close()
        await watch.close()
        await agent_bus.close()


async def test_a_silent_replica_with_its_link_open_waits_for_the_heartbeats(world: Any) -> None:
    """A broken connection to a live replica is no death (the probe is accepted). A partition
    (or a hung process): the link stays open, the heartbeats stop — gone after ``dead_after``
    (1.5 s), not sooner. And a replica whose link limit is reached closes the
    agent's connection before its hello: that is no death."""
    listener = LinkListener(recorder_id="quiet", host="127.0.0.1", port=0, max_links=1)
    await listener.start()
    full = LinkListener(recorder_id="full", host="127.0.0.1", port=0, max_links=1)
    await full.start()
    recorder_bus = await world.namespace.connect("recorder")
    agent_bus = await world.namespace.connect("agent")
    lost = Lost()
    watch: RecorderWatch[str] = RecorderWatch(agent_bus, on_lost=lost, unknown_after=2.0)
    await watch.start()
    loop = asyncio.get_running_loop()
    hog: asyncio.StreamWriter | None = None

    async def beat(rid: str, link: str) -> None:
        await recorder_bus.publish_heartbeat(
            RecorderHeartbeat(recorder_id=rid, interval_s=0.5, dead_after_s=1.5, link=link)
        )
        await recorder_bus.nc.flush()

    try:
        _, hog = await asyncio.open_connection("127.0.0.1", full.bound_port)  # its only slot
        await asyncio.sleep(0.05)
        for _ in range(4):
            await beat("quiet", format_link("127.0.0.1", listener.bound_port))
            last_quiet_beat = loop.time()
            await beat("full", format_link("127.0.0.1", full.bound_port))
            await asyncio.sleep(0.5)
        assert watch.links is not None and watch.links.state("quiet") == "open"
        assert watch.links.state("full") is None  # refused, to be retried; not dead
        # the connection breaks (a middlebox, a reset) but the replica lives: the probe finds
        # it listening and the link is open again, no call is touched
        links = watch.links
        before = links.link_ids()
        for writer in list(listener._writers):
            writer.close()
        await until(
            lambda: links.state("quiet") == "open" and links.link_ids() != before, 2, "no probe"
        )
        await asyncio.sleep(0.1)
        assert lost.calls == []
        watch.watch("call-q", "quiet")
        watch.watch("call-f", "full")
        await beat("full", format_link("127.0.0.1", full.bound_port))
        await asyncio.sleep(0.5)
        await beat("full", format_link("127.0.0.1", full.bound_port))
        await asyncio.wait_for(lost.event.wait(), 4)
        assert [c[:2] for c in lost.calls] == [("call-q", "quiet")]
        assert lost.calls[0][2] - last_quiet_beat >= 1.4  # 1.5 s after its last beat
    finally:
        if hog is not None:
            hog.close()
        await watch.close()
        await listener.close()
        await full.close()
        await agent_bus.close()
        await recorder_bus.close()
