"""What sipp hears, and RFC 4733 digits for sipp to send.

sipp keeps the RTP it receives to itself, so :class:`LoopbackRtpCapture` reads the loopback
interface with a raw ``AF_PACKET`` socket (needs ``CAP_NET_RAW``, which the test machine's root
has) and keeps the RTP packets sent *to* one UDP port — sipp's media port — in arrival order.

:func:`write_dtmf_pcap` writes a classic pcap of RFC 4733 telephone-event packets (one key per
digit: 160 ms of event packets every 20 ms, the first with the marker bit, then the end packet
three times, 200 ms between keys) that sipp's ``play_pcap_audio`` sends from its media port.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sipum_protocol.media.codecs.g711 import ulaw_decode

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


@dataclass
class LoopbackRtpCapture:
    port: int
    packets: list[tuple[float, int, int, bytes]] = field(default_factory=list)
    """(arrival, payload type, sequence number, payload)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _program: ctypes.Array[ctypes.c_char] | None = None
    _thread: threading.Thread | None = None

    def start(self) -> LoopbackRtpCapture:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        # the kernel keeps only UDP to our port (the machine's loopback is busy: NATS,
        # PostgreSQL, S3 of every test running), so nothing is dropped for want of buffer
        program = self._filter()
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("lo", 0))
        sock.settimeout(0.2)

        def pump() -> None:
            with sock:
                while not self._stop.is_set():
                    try:
                        frame, addr = sock.recvfrom(65535)
                    except TimeoutError:
                        continue
                    if addr[2] == PACKET_OUTGOING:  # each loopback packet is seen twice
                        continue
                    self._keep(frame)

        self._thread = threading.Thread(target=pump, name="rtp-capture", daemon=True)
        self._thread.start()
        return self

    def _filter(self) -> bytes:
        """``struct sock_fprog`` of the classic BPF program for "IPv4 UDP to self.port"
        (what ``tcpdump -dd 'ip and udp dst port N'`` compiles to, without the IPv6 part)."""
        drop = 10
        code = [
            (0x28, 0, 0, 12),  # ldh [12]            ethertype
            (0x15, 0, drop - 2, 0x0800),  # jeq IPv4
            (0x30, 0, 0, 23),  # ldb [23]            protocol
            (0x15, 0, drop - 4, 17),  # jeq UDP
            (0x28, 0, 0, 20),  # ldh [20]            fragment offset
            (0x45, drop - 6, 0, 0x1FFF),  # jset: a later fragment → drop
            (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)   IP header length
            (0x48, 0, 0, 16),  # ldh [x+16]          UDP destination port
            (0x15, 0, 1, self.port),  # jeq port
            (0x06, 0, 0, 0xFFFF),  # ret: keep
            (0x06, 0, 0, 0),  # ret: drop
        ]
        self._program = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *instruction) for instruction in code)
        )
        return struct.pack("HL", len(code), ctypes.addressof(self._program))

    def _keep(self, frame: bytes) -> None:
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            return
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 17:  # UDP
            return
        udp = ip[header:]
        _, dport, length, _ = struct.unpack("!HHHH", udp[:8])
        if dport != self.port:
            return
        rtp = udp[8:length]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            return
        offset = 12 + 4 * (rtp[0] & 0x0F)
        seq = struct.unpack("!H", rtp[2:4])[0]
        self.packets.append((time.monotonic(), rtp[1] & 0x7F, seq, bytes(rtp[offset:])))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def audio(self, payload_type: int = 0) -> np.ndarray:
        """The PCMU audio received, in arrival order (the sender's pacing)."""
        payload = b"".join(p for _, pt, _, p in self.packets if pt == payload_type)
        return ulaw_decode(payload) if payload else np.zeros(0, dtype=np.int16)


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(rtp), 0) + rtp
    loopback = socket.inet_aton("127.0.0.1")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def write_dtmf_pcap(
    path: Path,
    digits: str,
    *,
    first_seq: int = 1000,
    first_timestamp: int = 80_000,
    ssrc: int = 0x5EED,
    payload_type: int = 101,
) -> tuple[int, int]:
    """Write *digits* as RFC 4733 events (a space: a second without a key); returns the next
    (sequence number, timestamp), so a second file for the same call can go on where this one
    stopped."""
    records: list[tuple[float, bytes]] = []
    at, seq, ts = 0.0, first_seq, first_timestamp
    for digit in digits:
        if digit == " ":
            at += 1.0
            continue
        event = DTMF_EVENTS[digit]
        for n in range(1, 9):  # 8 × 20 ms
            marker = 0x80 if n == 1 else 0
            rtp = struct.pack("!BBHII", 0x80, marker | payload_type, seq & 0xFFFF, ts, ssrc)
            rtp += struct.pack("!BBH", event, 10, 160 * n)
            records.append((at, rtp))
            at, seq = at + 0.02, seq + 1
        for _ in range(3):  # the end, sent three times (RFC 4733 §2.5.1.4)
            rtp = struct.pack("!BBHII", 0x80, payload_type, seq & 0xFFFF, ts, ssrc)
            rtp += struct.pack("!BBH", event, 0x80 | 10, 160 * 8)
            records.append((at, rtp))
            seq += 1
        at += 0.2
        ts += 8000  # a second of timestamps per key: never mistaken for the same event
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    for when, rtp in records:
        frame = _frame(rtp, 4000, 4002)
        seconds = int(when)
        out.append(
            struct.pack("<IIII", seconds, int((when - seconds) * 1e6), len(frame), len(frame))
        )
        out.append(frame)
    path.write_bytes(b"".join(out))
    return seq, ts


def main(argv: list[str] | None = None) -> int:
    """``python tests/e2e/firstcall/capture.py DIR [PIN]``: the three digit files of the
    ``main_menu.xml`` sipp scenario (``pin.pcap`` = PIN + ``#``, ``delete.pcap`` = ``7``,
    ``exit.pcap`` = ``#``) in DIR, sipp's working directory."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: capture.py DIR [PIN]", file=sys.stderr)
        return 2
    directory = Path(args[0])
    pin = args[1] if len(args) > 1 else "2468"
    seq, ts = write_dtmf_pcap(directory / "pin.pcap", pin + "#")
    seq, ts = write_dtmf_pcap(directory / "delete.pcap", "7", first_seq=seq, first_timestamp=ts)
    write_dtmf_pcap(directory / "exit.pcap", "#", first_seq=seq, first_timestamp=ts)
    print(f"pin.pcap, delete.pcap, exit.pcap in {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
