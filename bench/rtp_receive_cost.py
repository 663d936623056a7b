"""CPU cost per received RTP packet: recording path vs a bare asyncio UDP sink, same run.

    uv run python bench/rtp_receive_cost.py [--calls 200] [--seconds 8] [--rounds 5] [--uvloop]

A sender process (pinned to the other core when there are two) streams G.711 RTP with absolute
pacing — ``--calls`` streams of 50 packets/s, each to its own port — to three receivers in turn:

- ``bare``: a bare asyncio sink, one ``DatagramProtocol`` per port that only counts (the target's
  reference: the recording path may cost at most twice this);
- ``reader``: a sink that reads its sockets the way ``RtpEndpoint`` does (a loop reader callback,
  ``recvfrom`` of one datagram's size until the first packet, then connected to its source and
  ``recv``) and only counts — so ``recording / reader`` is what the
  processing itself costs on top of receiving, with the socket-reading difference taken out;
- ``recording``: ``RtpEndpoint``s recording the streams (receiver + jitter buffer + decode +
  silence analysis + chunking).
 The receiving
process is pinned to one core; its CPU time (user + system, ``getrusage``) from the first to the
last packet divided by the packets received is the cost per packet. Both phases see the same
sender, packet count and rate, so the ratio is meaningful on a busy machine where absolute
figures are not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

PTIME = 0.02


# -- sender (a separate process) -----------------------------------------------------------------


def stream_payloads(seconds: float) -> list[bytes]:
    """µ-law frames of a speech-like test signal (well above the silence threshold)."""
    from sipum_protocol.media.codecs.g711 import ulaw_encode

    n = round(seconds / PTIME) * 160
    t = np.arange(n) / 8000
    x = 6000 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 330 * t)
    data = ulaw_encode(np.round(x).astype(np.int16))
    return [data[i : i + 160] for i in range(0, len(data), 160)]


def run_sender(host: str, ports: list[int], seconds: float, start_at: float) -> dict[str, int]:
    """Send one G.711 stream per port, packet k of every stream at start_at + k·20 ms."""
    import struct

    payloads = stream_payloads(seconds)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(min(len(ports), 64))]
    header = struct.Struct("!BBHII")
    ssrcs = [0x1000 + i for i in range(len(ports))]
    seq0 = [(i * 7919) & 0xFFFF for i in range(len(ports))]
    ts0 = [(0xFFFF0000 + i * 104729) & 0xFFFFFFFF for i in range(len(ports))]
    sent = 0
    errors = 0
    while time.time() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.time())))
    t0 = time.monotonic()
    for k, payload in enumerate(payloads):
        due = t0 + k * PTIME
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for i, port in enumerate(ports):
            data = (
                header.pack(
                    0x80,
                    0x80 if k == 0 else 0,
                    (seq0[i] + k) & 0xFFFF,
                    (ts0[i] + 160 * k) & 0xFFFFFFFF,
                    ssrcs[i],
                )
                + payload
            )
            try:
                socks[i % len(socks)].sendto(data, (host, port))
                sent += 1
            except OSError:
                errors += 1
    return {
        "sent": sent,
        "send_errors": errors,
        "late_end": round(time.monotonic() - t0 - len(payloads) * PTIME, 3),
    }


def start_sender(
    host: str, ports: list[int], seconds: float, start_at: float, cpu: int | None
) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--sender", json.dumps([host, ports, seconds, start_at])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        try:
            os.sched_setaffinity(proc.pid, {cpu})
        except OSError:
            pass
    return proc


# -- receivers ---------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def udp_snmp() -> dict[str, int]:
    """Kernel UDP counters (/proc/net/snmp), for drops outside the application."""
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))


class Window:
    """CPU time between the first and the last packet received."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        self.done = asyncio.get_running_loop().create_future()

    def packet(self) -> None:
        self.count += 1
        if self.count == 1:
            self.cpu_first = cpu_seconds()
        elif self.count >= self.expected:
            self.cpu_last = cpu_seconds()
            if not self.done.done():
                self.done.set_result(None)


class BareSink(asyncio.DatagramProtocol):
    def __init__(self, window: Window) -> None:
        self.window = window

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.window.packet()


def reader_sink(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, window: Window
) -> Callable[[], None]:
    """A reader callback that reads like ``RtpEndpoint`` and only counts: ``recvfrom`` until
    the first datagram, then connected to its source and ``recv``."""
    from sipum_protocol.media.endpoint import MAX_DATAGRAM

    recv = sock.recv

    def readable() -> None:
        try:
            recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        window.packet()

    def first_readable() -> None:
        try:
            _, addr = sock.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        sock.connect(addr)
        loop.add_reader(sock.fileno(), readable)
        window.packet()

    return first_readable


async def measure(
    kind: str, calls: int, seconds: float, cpu: int | None, host: str
) -> dict[str, float]:
    from sipum_protocol.media.codecs import PCMU
    from sipum_protocol.media.endpoint import RtpEndpoint
    from sipum_protocol.media.ports import PortPool
    from sipum_protocol.media.recording import RecordingSettings

    loop = asyncio.get_running_loop()
    packets_each = round(seconds / PTIME)
    window = Window(calls * packets_each)
    transports: list[asyncio.DatagramTransport] = []
    sockets: list[socket.socket] = []
    endpoints: list[RtpEndpoint] = []
    recordings: list[asyncio.Future[object]] = []
    ports: list[int] = []
    if kind == "bare":
        for _ in range(calls):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: BareSink(window), local_addr=(host, 0)
            )
            transports.append(transport)
            ports.append(transport.get_extra_info("sockname")[1])
    elif kind == "reader":
        for _ in range(calls):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), reader_sink(loop, sock, window))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    else:
        size = 2 * calls + 2 + max(100, calls // 5)  # room for ports others hold
        base = find_port_range(host, size)
        pool = PortPool(base, base + size - 1, host=host)
        settings = RecordingSettings(max_length=seconds + 60, max_silence=30)
        for _ in range(calls):
            endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=(host, 9))
            # count after the endpoint's own reader callbacks (one datagram per call): the first
            # is registered already, the one after latching is looked up on the instance then
            fd = endpoint._rtp_socket.fileno()
            first, latched = endpoint._rtp_first_readable, endpoint._rtp_readable

            def counted_first(first: Callable[[], None] = first) -> None:
                first()
                window.packet()

            def counted(latched: Callable[[], None] = latched) -> None:
                latched()
                window.packet()

            loop.remove_reader(fd)
            loop.add_reader(fd, counted_first)
            endpoint._rtp_readable = counted  # type: ignore[method-assign]
            endpoints.append(endpoint)
            ports.append(endpoint.local_port)
            recordings.append(
                asyncio.ensure_future(endpoint.record(settings, on_chunk=lambda c: None))
            )
    snmp_before = udp_snmp()
    sender = start_sender(host, ports, seconds, time.time() + 0.5, None if cpu is None else 1 - cpu)
    try:
        await asyncio.wait_for(window.done, seconds + 10)
    except TimeoutError:
        window.cpu_last = cpu_seconds()
    out, _ = await loop.run_in_executor(None, sender.communicate)
    snmp_after = udp_snmp()
    report = json.loads(out)
    for endpoint in endpoints:
        endpoint.hangup()
        await endpoint.close()
    for transport in transports:
        transport.close()
    for sock in sockets:
        loop.remove_reader(sock.fileno())
        sock.close()
    received = window.count
    return {
        "sent": report["sent"],
        "received": received,
        "cpu_s": window.cpu_last - window.cpu_first,
        "us_per_packet": 1e6 * (window.cpu_last - window.cpu_first) / max(1, received - 1),
        "kernel_rcvbuf_errors": snmp_after["RcvbufErrors"] - snmp_before["RcvbufErrors"],
        "sender_late_s": report["late_end"],
    }


def find_port_range(host: str, size: int) -> int:
    """A base port for the pool: ask the OS for a free port and round it to even."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    base = port - port % 2
    return base if base + size < 65535 else 20000


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--sender":
        host, ports, seconds, start_at = json.loads(sys.argv[2])
        print(json.dumps(run_sender(host, ports, seconds, start_at)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternate bare/recording this many times"
    )
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--gc",
        choices=("service", "default"),
        default="service",
        help="collector settings: as the services run (no automatic full passes) or Python's",
    )
    args = parser.parse_args()
    if args.gc == "service":
        from sipum.runtime.service import tune_garbage_collector

        tune_garbage_collector()
    cpu: int | None = None
    if (os.cpu_count() or 1) >= 2:
        cpu = 0
        os.sched_setaffinity(0, {cpu})
    if args.uvloop:
        import uvloop

        uvloop.install()
    kinds = ("bare", "reader", "recording")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            r = asyncio.run(measure(kind, args.calls, args.seconds, cpu, args.host))
            results[kind].append(r)
            print(
                f"{kind:9s} "
                + " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                ),
                flush=True,
            )
    import statistics

    bares = [r["us_per_packet"] for r in results["bare"]]
    readers = [r["us_per_packet"] for r in results["reader"]]
    recs = [r["us_per_packet"] for r in results["recording"]]
    # Each round measures all three back to back: the ratio within a round is what a busy
    # machine distorts least. Report its median, and the medians of the absolute figures.
    ratios = sorted(rec / bare for rec, bare in zip(recs, bares, strict=True))
    same_read = sorted(rec / reader for rec, reader in zip(recs, readers, strict=True))
    print(
        f"\n{args.calls} G.711 streams x {args.seconds:g} s, loop={'uvloop' if args.uvloop else 'asyncio'}, "
        f"receiver pinned to cpu {cpu}; median of {args.rounds} paired rounds:"
    )
    print(
        f"bare sink      {statistics.median(bares):7.2f} us CPU per packet (asyncio DatagramProtocol)"
    )
    print(
        f"reader sink    {statistics.median(readers):7.2f} us CPU per packet (reads as RtpEndpoint does)"
    )
    print(f"recording path {statistics.median(recs):7.2f} us CPU per packet")
    print(
        f"recording / bare   {statistics.median(ratios):5.2f} x  (per round {', '.join(f'{r:.2f}' for r in ratios)}; target <= 2)"
    )
    print(
        f"recording / reader {statistics.median(same_read):5.2f} x  (per round {', '.join(f'{r:.2f}' for r in same_read)})"
    )


if __name__ == "__main__":
    main()
