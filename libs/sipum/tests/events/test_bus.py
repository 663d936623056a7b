"""EventBus against the real NATS server, each test in its own prefix + stream."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sipum.errors import ConfigError
from sipum.events import (
    CallStarted,
    Event,
    EventBus,
    EventBusError,
    MediaAllocateReply,
    MediaAllocateRequest,
    MessageCreated,
    NoResponders,
    RemoteError,
    RequestTimeout,
    SessionCommand,
    SessionDtmf,
    SessionEnded,
    SessionHangup,
    UserCreated,
    current_delivery,
)
from sipum.events.examples import EVENT_EXAMPLES, MEDIA_ALLOCATE_REQUEST
from sipum_testing.nats import EventNamespace
from sipum_testing.s3 import free_port

CREATED = EVENT_EXAMPLES[0]
assert isinstance(CREATED, MessageCreated)


def created(message_id: int) -> MessageCreated:
    """A fresh message.created (new event id) for message ``message_id``."""
    data = CREATED.model_dump(exclude={"id", "ts"})
    data["message_id"] = message_id
    return MessageCreated(**data)


async def wait_until(predicate, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_connect_unreachable_is_a_config_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        await EventBus.connect(url, "test")
    assert err.value.setting == "nats_url"
    assert url in str(err.value)
    assert "\n" not in str(err.value)
    assert time.monotonic() - started < 5


async def test_connect_error_hides_password() -> None:
    with pytest.raises(ConfigError) as err:
        await EventBus.connect(f"nats://svc:hunter2@127.0.0.1:{free_port()}", "test")
    assert "hunter2" not in str(err.value)
    assert "svc:***@" in str(err.value)


async def test_ensure_stream_is_idempotent_and_concurrent(event_namespace: EventNamespace) -> None:
    buses = [await event_namespace.connect(f"r{i}") for i in range(3)]
    try:
        infos = await asyncio.gather(*(b.ensure_stream() for b in buses))
        assert {i.config.name for i in infos} == {event_namespace.stream}
        assert infos[0].config.subjects == [f"{event_namespace.prefix}.evt.>"]
        await buses[0].publish(created(1))
        again = await buses[1].ensure_stream()
        assert again.state.messages == 1  # not recreated
        updated = await buses[2].ensure_stream(max_age=timedelta(days=1))
        assert updated.config.max_age == 86400
        assert updated.state.messages == 1
        await buses[0].check()
        await buses[0].delete_stream()
        with pytest.raises(EventBusError):
            await buses[0].check()
    finally:
        for b in buses:
            await b.close()


async def test_publish_subscribe_ack(event_bus: EventBus) -> None:
    got: list[MessageCreated] = []
    deliveries = []

    async def handler(ev: MessageCreated) -> None:
        got.append(ev)
        deliveries.append(current_delivery())

    first = created(100)
    ack = await event_bus.publish(first)
    assert ack.stream == event_bus.stream and ack.seq == 1 and not ack.duplicate
    sub = await event_bus.subscribe(MessageCreated, handler, durable="notifier")
    await wait_until(lambda: len(got) == 1)
    assert got[0] == first
    assert deliveries[0].num_delivered == 1 and deliveries[0].stream_seq == 1
    assert deliveries[0].consumer == "notifier"
    # Acked: nothing pending, nothing waiting for an ack.
    await wait_until(lambda: True)
    info = await event_bus.js.consumer_info(event_bus.stream, "notifier")
    assert info.num_pending == 0 and info.num_ack_pending == 0
    # A restarted consumer resumes after what was acked.
    await sub.stop()
    second = created(101)
    await event_bus.publish(second)
    await event_bus.subscribe(MessageCreated, handler, durable="notifier")
    await wait_until(lambda: len(got) == 2)
    await asyncio.sleep(0.3)
    assert [e.message_id for e in got] == [100, 101]


async def test_duplicate_publish_is_dropped(event_bus: EventBus) -> None:
    ev = created(7)
    a = await event_bus.publish(ev)
    b = await event_bus.publish(ev)
    assert not a.duplicate and b.duplicate and a.seq == b.seq
    got: list[Event] = []

    async def handler(e: MessageCreated) -> None:
        got.append(e)

    await event_bus.subscribe(MessageCreated, handler, durable="once")
    await wait_until(lambda: len(got) == 1)
    await asyncio.sleep(0.3)
    assert len(got) == 1


async def test_failed_handler_gets_the_event_again(event_bus: EventBus) -> None:
    attempts: list[int] = []

    async def flaky(ev: MessageCreated) -> None:
        attempts.append(current_delivery().num_delivered)
        if len(attempts) < 3:
            raise RuntimeError("SMTP server said 451")

    await event_bus.subscribe(
        MessageCreated, flaky, durable="flaky", retry_delays=(0.2, 0.4), max_deliver=5
    )
    started = time.monotonic()
    await event_bus.publish(created(9))
    await wait_until(lambda: len(attempts) == 3, within=10)
    elapsed = time.monotonic() - started
    assert attempts == [1, 2, 3]
    assert elapsed >= 0.55  # waited 0.2 s then 0.4 s between the attempts
    await asyncio.sleep(0.5)
    assert len(attempts) == 3  # acked after the success: no fourth delivery
    info = await event_bus.js.consumer_info(event_bus.stream, "flaky")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_max_deliver_bounds_retries(event_bus: EventBus) -> None:
    attempts = 0

    async def broken(ev: MessageCreated) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("always")

    await event_bus.subscribe(
        MessageCreated, broken, durable="broken", retry_delays=(0.05,), max_deliver=3
    )
    await event_bus.publish(created(10))
    await wait_until(lambda: attempts >= 3)
    await asyncio.sleep(0.6)
    assert attempts == 3
    info = await event_bus.js.consumer_info(event_bus.stream, "broken")
    assert info.num_ack_pending == 0  # given up explicitly (term), not left hanging


async def test_undecodable_payload_is_terminated_not_retried(event_bus: EventBus) -> None:
    got: list[int] = []

    async def handler(ev: MessageCreated) -> None:
        got.append(ev.message_id)

    subject = event_bus.subjects.event("message.created")
    await event_bus.js.publish(subject, b'{"v": 1, "not": "a message"}', stream=event_bus.stream)
    await event_bus.js.publish(subject, b"\xff garbage", stream=event_bus.stream)
    await event_bus.publish(created(11))
    await event_bus.subscribe(MessageCreated, handler, durable="strict", retry_delays=(0.05,))
    await wait_until(lambda: got == [11])
    await asyncio.sleep(0.4)
    assert got == [11]
    info = await event_bus.js.consumer_info(event_bus.stream, "strict")
    assert info.num_ack_pending == 0


async def test_wildcard_subscription_decodes_each_kind(event_bus: EventBus) -> None:
    got: list[Event] = []

    async def handler(ev: Event) -> None:
        got.append(ev)

    await event_bus.subscribe(">", handler, durable="everything")
    await event_bus.subscribe("user.*", handler, durable="users")
    examples = EVENT_EXAMPLES[:7]
    for ev in examples:
        await event_bus.publish(ev)
    await wait_until(lambda: len(got) == len(examples) + 3)
    # The user.created example reached both consumers, the rest only ">".
    assert Counter(type(e).__name__ for e in got)["UserCreated"] == 2
    assert {type(e) for e in got} >= {MessageCreated, UserCreated, CallStarted}
    assert sorted(e.to_json() for e in got if e.kind.startswith("message.")) == sorted(
        e.to_json() for e in examples if e.kind.startswith("message.")
    )


async def test_replicas_share_a_durable(event_namespace: EventNamespace) -> None:
    """Two replicas with the same durable: each event handled by exactly one of them."""
    a, b = await event_namespace.connect("a"), await event_namespace.connect("b")
    try:
        await a.ensure_stream()
        seen: dict[str, list[int]] = {"a": [], "b": []}

        def handler_for(name: str):  # type: ignore[no-untyped-def]
            async def handler(ev: MessageCreated) -> None:
                seen[name].append(ev.message_id)
                await asyncio.sleep(0.005)

            return handler

        await a.subscribe(MessageCreated, handler_for("a"), durable="notifier")
        await b.subscribe(MessageCreated, handler_for("b"), durable="notifier")
        for i in range(60):
            await a.publish(created(1000 + i))
        await wait_until(lambda: len(seen["a"]) + len(seen["b"]) == 60, within=10)
        await asyncio.sleep(0.3)
        assert sorted(seen["a"] + seen["b"]) == list(range(1000, 1060))
        assert seen["a"] and seen["b"], seen
    finally:
        await a.close()
        await b.close()


async def test_namespaces_do_not_see_each_other(event_bus: EventBus, nats_url: str) -> None:
    other = await EventBus.connect(
        nats_url, "other", prefix=event_bus.subjects.prefix + "x", stream=event_bus.stream + "X"
    )
    try:
        await other.ensure_stream()
        got: list[int] = []

        async def handler(ev: MessageCreated) -> None:
            got.append(ev.message_id)

        await event_bus.subscribe(MessageCreated, handler, durable="mine")
        await other.publish(created(1))
        await event_bus.publish(created(2))
        await wait_until(lambda: got == [2])
        await asyncio.sleep(0.3)
        assert got == [2]
    finally:
        await other.delete_stream()
        await other.close()


# -- RPC ---------------------------------------------------------------------------------------


def reply_for(recorder: str, req: MediaAllocateRequest) -> MediaAllocateReply:
    return MediaAllocateReply(
        session_id=f"{recorder}-{req.call_id}", answer_sdp="v=0\r\n", recorder_id=recorder
    )


async def test_request_reply_split_across_queue_group(event_namespace: EventNamespace) -> None:
    caller, r1, r2 = [await event_namespace.connect(n) for n in ("agent", "rec1", "rec2")]
    try:
        served: Counter[str] = Counter()

        def serve_as(name: str):  # type: ignore[no-untyped-def]
            async def handle(req: MediaAllocateRequest) -> MediaAllocateReply:
                served[name] += 1
                return reply_for(name, req)

            return handle

        await r1.serve_media_allocate(serve_as("rec1"))
        await r2.serve_media_allocate(serve_as("rec2"))
        await r1.nc.flush()
        await r2.nc.flush()
        replies = await asyncio.gather(
            *(
                caller.allocate_media(
                    MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": f"c{i}"})
                )
                for i in range(100)
            )
        )
        for i, rep in enumerate(replies):
            assert rep.session_id == f"{rep.recorder_id}-c{i}"
        assert served["rec1"] + served["rec2"] == 100  # each request answered once
        assert served["rec1"] > 10 and served["rec2"] > 10, served
    finally:
        for bus in (caller, r1, r2):
            await bus.close()


async def test_a_request_addressed_to_one_replica_reaches_only_it(
    event_namespace: EventNamespace,
) -> None:
    """A moved call's continue goes to the replica the agent chose (``recorder_id``), never to
    another member of the queue group; a replica without its own subject: no responders."""
    caller, r1, r2 = [await event_namespace.connect(n) for n in ("agent", "rec.1", "rec 2")]
    try:
        served: Counter[str] = Counter()

        def serve_as(name: str):  # type: ignore[no-untyped-def]
            async def handle(req: MediaAllocateRequest) -> MediaAllocateReply:
                served[name] += 1
                return reply_for(name, req)

            return handle

        for bus, name in ((r1, "rec.1"), (r2, "rec 2")):  # any id is one subject token
            await bus.serve_media_allocate(serve_as(name))
            await bus.serve_media_allocate(serve_as(name), recorder_id=name)
            await bus.nc.flush()
        replies = await asyncio.gather(
            *(
                caller.allocate_media(
                    MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": f"c{i}"}),
                    recorder_id="rec 2",
                )
                for i in range(20)
            )
        )
        assert {rep.recorder_id for rep in replies} == {"rec 2"}
        assert served == Counter({"rec 2": 20})
        with pytest.raises(NoResponders):
            await caller.allocate_media(MEDIA_ALLOCATE_REQUEST, timeout=3, recorder_id="rec3")
    finally:
        for bus in (caller, r1, r2):
            await bus.close()


async def test_no_responders(event_bus: EventBus) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders):
        await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST, timeout=3)
    assert time.monotonic() - started < 1.5  # known at once, not after the timeout


async def test_request_timeout(event_bus: EventBus) -> None:
    async def slow(req: MediaAllocateRequest) -> MediaAllocateReply:
        await asyncio.sleep(1.0)
        return reply_for("slow", req)

    await event_bus.serve_media_allocate(slow)
    with pytest.raises(RequestTimeout):
        await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST, timeout=0.2)


async def test_remote_errors(event_bus: EventBus) -> None:
    async def picky(req: MediaAllocateRequest) -> MediaAllocateReply:
        if req.call_id == "no-codec":
            raise RemoteError("unsupported", "no common codec")
        if req.call_id == "bug":
            raise KeyError("oops")
        return reply_for("picky", req)

    await event_bus.serve_media_allocate(picky)
    with pytest.raises(RemoteError) as err:
        await event_bus.allocate_media(
            MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": "no-codec"})
        )
    assert (err.value.code, err.value.message) == ("unsupported", "no common codec")
    with pytest.raises(RemoteError) as err:
        await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": "bug"}))
    assert err.value.code == "internal" and "KeyError" in err.value.message
    # A request that does not validate.
    with pytest.raises(RemoteError) as err:
        await event_bus.request(
            event_bus.subjects.media_allocate, CREATED, MediaAllocateReply, timeout=2
        )
    assert err.value.code == "bad_request"
    ok = await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST)
    assert ok.recorder_id == "picky"


async def test_slow_request_does_not_block_the_next(event_bus: EventBus) -> None:
    async def handle(req: MediaAllocateRequest) -> MediaAllocateReply:
        if req.call_id == "slow":
            await asyncio.sleep(0.8)
        return reply_for("r", req)

    await event_bus.serve_media_allocate(handle)
    slow = asyncio.create_task(
        event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": "slow"}))
    )
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST.model_copy(update={"call_id": "fast"}))
    assert time.monotonic() - started < 0.5
    assert (await slow).session_id == "r-slow"


async def test_session_commands(event_bus: EventBus) -> None:
    recorder_got: list[SessionCommand] = []
    agent_got: list[SessionCommand] = []

    async def recorder(cmd: SessionCommand) -> None:
        recorder_got.append(cmd)

    async def agent(cmd: SessionCommand) -> None:
        agent_got.append(cmd)

    await event_bus.subscribe_session("r1-abc", recorder, commands=["hangup", "dtmf"])
    await event_bus.subscribe_session("r1-abc", agent, commands=["ended"])
    everything: list[SessionCommand] = []

    async def spy(cmd: SessionCommand) -> None:
        everything.append(cmd)

    await event_bus.subscribe_session("r1-abc", spy)
    await event_bus.nc.flush()
    await event_bus.send_command(SessionDtmf(session_id="r1-abc", digit="5"))
    await event_bus.send_command(SessionHangup(session_id="r1-abc", reason="bye"))
    await event_bus.send_command(SessionHangup(session_id="r2-other"))
    await event_bus.send_command(
        SessionEnded(session_id="r1-abc", call_id="c1", end_reason="max_length")
    )
    await wait_until(lambda: len(everything) == 3 and len(recorder_got) == 2 and agent_got)
    assert [type(c) for c in recorder_got] == [SessionDtmf, SessionHangup]
    assert isinstance(recorder_got[0], SessionDtmf) and recorder_got[0].digit == "5"
    assert [type(c) for c in agent_got] == [SessionEnded]
    assert all(c.session_id == "r1-abc" for c in everything)


async def test_slow_handler_is_not_raced_by_redelivery(event_bus: EventBus) -> None:
    calls: list[int] = []

    async def slow(ev: MessageCreated) -> None:
        calls.append(current_delivery().num_delivered)
        await asyncio.sleep(1.6)  # > 3 x ack_wait

    await event_bus.subscribe(MessageCreated, slow, durable="slow", ack_wait=0.5)
    await event_bus.publish(created(50))
    await wait_until(lambda: calls == [1])
    await asyncio.sleep(2.2)
    assert calls == [1]
    info = await event_bus.js.consumer_info(event_bus.stream, "slow")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_concurrent_handlers(event_bus: EventBus) -> None:
    running = 0
    peak = 0
    done: list[int] = []

    async def handler(ev: MessageCreated) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        done.append(ev.message_id)

    for i in range(8):
        await event_bus.publish(created(60 + i))
    started = time.monotonic()
    await event_bus.subscribe(MessageCreated, handler, durable="wide", concurrency=4)
    await wait_until(lambda: len(done) == 8)
    assert peak == 4
    assert time.monotonic() - started < 1.4  # 8 x 0.2 s would take 1.6 s one by one
    assert sorted(done) == list(range(60, 68))


async def test_changed_consumer_settings_are_applied(event_bus: EventBus) -> None:
    got: list[Event] = []

    async def handler(ev: Event) -> None:
        got.append(ev)

    sub = await event_bus.subscribe(MessageCreated, handler, durable="evolving", ack_wait=30)
    await sub.stop()
    await event_bus.subscribe(
        MessageCreated, handler, durable="evolving", ack_wait=12, max_deliver=3
    )
    info = await event_bus.js.consumer_info(event_bus.stream, "evolving")
    assert (info.config.ack_wait, info.config.max_deliver) == (12, 3)
    await event_bus.publish(created(70))
    await wait_until(lambda: len(got) == 1)
    assert isinstance(got[0], MessageCreated) and got[0].message_id == 70
    # Filter and queue group cannot change under the same durable name.
    with pytest.raises(EventBusError, match="filter"):
        await event_bus.subscribe("user.*", handler, durable="evolving")
    with pytest.raises(EventBusError, match="queue group"):
        await event_bus.subscribe(MessageCreated, handler, durable="evolving", queue="other")


async def test_publish_without_stream(event_namespace: EventNamespace) -> None:
    bus = await event_namespace.connect()
    try:
        with pytest.raises(EventBusError, match="ensure_stream"):
            await bus.publish(created(1), timeout=1)
    finally:
        await bus.close()


async def test_graceful_stop_finishes_in_flight_and_hands_back_the_rest(
    event_namespace: EventNamespace,
) -> None:
    a, b = await event_namespace.connect("a"), await event_namespace.connect("b")
    try:
        await a.ensure_stream()
        for i in range(5):
            await a.publish(created(80 + i))
        started = asyncio.Event()
        finished_a: list[int] = []
        cancelled_a: list[int] = []
        got_b: list[int] = []

        async def slow_a(ev: MessageCreated) -> None:
            started.set()
            try:
                await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                cancelled_a.append(ev.message_id)
                raise
            finished_a.append(ev.message_id)

        async def fast_b(ev: MessageCreated) -> None:
            got_b.append(ev.message_id)

        sub = await a.subscribe(MessageCreated, slow_a, durable="worker", ack_wait=30)
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        await sub.stop()
        assert finished_a == [80] and cancelled_a == []  # in-flight handler completed
        await b.subscribe(MessageCreated, fast_b, durable="worker", ack_wait=30)
        await wait_until(lambda: len(got_b) == 4)
        assert time.monotonic() - t0 < 5  # handed back at once, not after ack_wait
        assert sorted(finished_a + got_b) == [80, 81, 82, 83, 84]
        await asyncio.sleep(0.3)
        info = await b.js.consumer_info(b.stream, "worker")
        assert info.num_ack_pending == 0
    finally:
        await a.close()
        await b.close()


async def test_reply_of_the_wrong_shape(event_bus: EventBus) -> None:
    async def confused(msg) -> None:  # type: ignore[no-untyped-def]
        await event_bus.nc.publish(msg.reply, b'{"hello": "world"}')

    await event_bus.nc.subscribe(event_bus.subjects.media_allocate, cb=confused)
    with pytest.raises(EventBusError, match="not a MediaAllocateReply"):
        await event_bus.allocate_media(MEDIA_ALLOCATE_REQUEST)


async def test_filters_are_relative(event_bus: EventBus) -> None:
    async def handler(ev: Event) -> None:
        pass

    for bad in (f"{event_bus.subjects.prefix}.evt.message.created", "", ".x", "message."):
        with pytest.raises(ValueError):
            await event_bus.subscribe(bad, handler, durable="bad")


async def test_connect_to_a_server_list(event_namespace: EventNamespace) -> None:
    """A dead server first in the list does not stop the client from using the live one."""
    url = f"nats://127.0.0.1:{free_port()},{event_namespace.url}"
    bus = await EventBus.connect(
        url, "list", prefix=event_namespace.prefix, stream=event_namespace.stream
    )
    try:
        await bus.ensure_stream()
        ack = await bus.publish(created(90))
        assert ack.seq == 1
    finally:
        await bus.close()


async def test_survives_a_server_restart(tmp_path: Path) -> None:
    """A private nats-server is stopped and started again: the bus reconnects by itself."""
    port = free_port()
    store = tmp_path / "js"

    async def start_server() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            "nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return proc
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("nats-server did not start")

    server = await start_server()
    bus = await EventBus.connect(f"nats://127.0.0.1:{port}", "restart", prefix="r", stream="R")
    try:
        await bus.ensure_stream()
        got: list[int] = []

        async def handler(ev: MessageCreated) -> None:
            got.append(ev.message_id)

        await bus.subscribe(MessageCreated, handler, durable="survivor")
        await bus.publish(created(1))
        await wait_until(lambda: got == [1])
        server.terminate()
        await server.wait()
        await wait_until(lambda: not bus.is_connected)
        server = await start_server()
        await wait_until(lambda: bus.is_connected, within=15)
        await bus.publish(created(2))
        await wait_until(lambda: got == [1, 2], within=10)
    finally:
        await bus.close(timeout=2)
        if server.returncode is None:
            server.terminate()
            await server.wait()


async def test_isolated_namespace_cleans_up(nats_url: str) -> None:
    from sipum_testing.nats import isolated_event_namespace

    async with isolated_event_namespace(nats_url) as ns:
        bus = await ns.connect()
        await bus.ensure_stream()
        await bus.publish(created(1))
        assert ns.prefix != "sipum" and ns.stream != "SIPUM"
    try:
        with pytest.raises(EventBusError, match="does not exist"):
            await bus.check()
    finally:
        await bus.close()
