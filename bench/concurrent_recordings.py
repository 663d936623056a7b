"""How many concurrent G.711 calls one recorder process records without losing a packet.

    uv run python bench/concurrent_recordings.py [--calls 300,500,700] [--seconds 10] [--uvloop]

For each call count N: the recorder process (pinned to one core) opens N ``RtpEndpoint``s from a
port pool and starts a recording on each (receiver + jitter buffer + decode + silence analysis +
chunking; chunks are counted, not written, so disk speed does not enter). A sender process
(pinned to the other core) streams N G.711 calls at 50 packets/s each with absolute pacing.
Afterwards, per stream: packets sent vs packets the application received, and recorded samples
vs expected; the kernel's UDP ``RcvbufErrors``/``InErrors`` deltas (/proc/net/snmp) say how many
of the missing packets the kernel dropped because the process did not read in time. Also: the
recorder's CPU use over the run (share of one core) and its memory per call (RSS growth after
opening and running the N sessions, divided by N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

from rtp_receive_cost import find_port_range, start_sender, udp_snmp

# imported before any memory is measured, so the first run is not charged for them
from sipum_protocol.media.codecs import PCMU
from sipum_protocol.media.endpoint import RtpEndpoint
from sipum_protocol.media.ports import PortPool
from sipum_protocol.media.recording import RecordingChunk, RecordingSettings

PTIME = 0.02


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(calls: int, seconds: float, host: str, cpu: int | None) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    problems: list[str] = []

    def on_exception(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if len(problems) < 3:
            problems.append(f"{context.get('message')}: {context.get('exception')!r}")
        loop.default_exception_handler(context)

    loop.set_exception_handler(on_exception)
    lag = [0.0]

    async def watch_lag() -> None:
        """Longest delay of a 10 ms sleep: how late the loop runs its callbacks."""
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            lag[0] = max(lag[0], loop.time() - t - 0.01)

    watcher = asyncio.ensure_future(watch_lag())
    rss_before = rss_bytes()
    # some room: ports other processes hold in the range are skipped
    size = 2 * calls + 2 + max(100, calls // 5)
    base = find_port_range(host, size)
    pool = PortPool(base, base + size - 1, host=host)
    settings = RecordingSettings(max_length=seconds + 60, max_silence=30)
    endpoints = []
    recordings = []
    recorded = [0] * calls

    def sink(i: int) -> object:
        def on_chunk(chunk: RecordingChunk) -> None:
            recorded[i] += len(chunk.pcm) // 2

        return on_chunk

    for i in range(calls):
        endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=(host, 9))
        endpoints.append(endpoint)
        recordings.append(asyncio.ensure_future(endpoint.record(settings, on_chunk=sink(i))))  # type: ignore[arg-type]
    ports = [e.local_port for e in endpoints]
    await asyncio.sleep(0.2)
    snmp_before = udp_snmp()
    start_at = time.time() + 1.0
    sender = start_sender(host, ports, seconds, start_at, None if cpu is None else 1 - cpu)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    lag[0] = 0.0
    out, _ = await loop.run_in_executor(None, sender.communicate)
    lag_during = lag[0]

    def app_received(e: RtpEndpoint) -> int:
        # through the receiver, or read and queued for it (the endpoint works in batches)
        return (e.receiver.source.received if e.receiver.source else 0) + e.queued_packets

    def total_received() -> int:
        return sum(app_received(e) for e in endpoints)

    # A loaded recorder may still be working through its socket buffers: wait until nothing
    # more arrives (late is not lost; the loop lag above says how late).
    previous = -1
    for _ in range(100):
        await asyncio.sleep(0.2)
        now_received = total_received()
        if now_received == previous:
            break
        previous = now_received
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    rss_peak = rss_bytes()
    snmp_after = udp_snmp()
    report = json.loads(out)
    expected_each = round(seconds / PTIME)
    received = [app_received(e) for e in endpoints]
    closed_before_hangup = sum(1 for e in endpoints if not e.receiving)
    for e in endpoints:
        e.hangup()
    results = await asyncio.gather(*recordings)
    for e in endpoints:
        await e.close()
    watcher.cancel()
    closed = closed_before_hangup
    lost = [expected_each - r for r in received]
    short = sum(
        1
        for i, r in enumerate(results)
        if r.samples != expected_each * 160 or recorded[i] != r.samples
    )
    return {
        "calls": calls,
        "sent": report["sent"],
        "received_by_app": sum(received),
        "streams_with_loss": sum(1 for x in lost if x > 0),
        "packets_lost": sum(max(0, x) for x in lost),
        "recordings_wrong_length": short,
        "kernel_rcvbuf_errors": snmp_after["RcvbufErrors"] - snmp_before["RcvbufErrors"],
        "kernel_in_errors": snmp_after["InErrors"] - snmp_before["InErrors"],
        "kernel_no_ports": snmp_after["NoPorts"] - snmp_before["NoPorts"],
        "received_min_max": f"{min(received)}/{max(received)}",
        "cpu_share_of_core": (cpu1 - cpu0) / (wall1 - wall0),
        "cpu_us_per_packet": 1e6 * (cpu1 - cpu0) / max(1, sum(received)),
        "rss_per_call_kib": (rss_peak - rss_before) / calls / 1024,
        "sender_late_s": report["late_end"],
        "max_loop_lag_ms": 1000 * lag_during,
        "transports_closed": closed,
        "errors": "; ".join(problems) or "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="300,500,700", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the recorder to cpu 0 and the sender to cpu 1 (only on an otherwise idle machine)",
    )
    args = parser.parse_args()
    cpu: int | None = None
    if args.pin and (os.cpu_count() or 1) >= 2:
        cpu = 0
        os.sched_setaffinity(0, {cpu})
    if args.uvloop:
        import uvloop

        uvloop.install()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"loop={'uvloop' if args.uvloop else 'asyncio'} seconds={args.seconds:g} recorder on cpu {cpu}"
    )
    for calls in (int(c) for c in args.calls.split(",")):
        r = asyncio.run(run(calls, args.seconds, args.host, cpu))
        clean = r["packets_lost"] == 0 and r["recordings_wrong_length"] == 0
        # intact but handled late: the loop fell behind (a real call would hear/see it)
        verdict = ("CLEAN" if r["max_loop_lag_ms"] <= 500 else "LATE ") if clean else "LOSS "
        print(
            f"{calls:5d} calls: {verdict} "
            + " ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
