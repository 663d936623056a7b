"""Known speech as sipp plays it: an RTP capture (pcap) of G.711 A-law packets.

sipp's ``play_pcap_audio`` replays the UDP payloads of a capture at the capture's pace, from
the call's media port to the port of the answer's SDP, so any audio can be played into a call
once it is written as such a capture: classic little-endian pcap, Ethernet, IPv4/UDP, one RTP
packet (payload type 8, 20 ms, 160 samples) per frame.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from sipum_protocol.media.codecs import alaw_encode

FRAME = 160  # samples: 20 ms at 8 kHz
PCMA = 8


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_alaw_pcap(pcm: np.ndarray, path: Path, *, ssrc: int = 0x5150_4D31) -> float:
    """Write 8 kHz mono ``pcm`` as a capture of A-law RTP; returns its length in seconds."""
    samples = np.asarray(pcm, dtype=np.int16)
    samples = np.concatenate([samples, np.zeros(-len(samples) % FRAME, dtype=np.int16)])
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(len(samples) // FRAME):
        payload = alaw_encode(samples[n * FRAME : (n + 1) * FRAME])
        rtp = struct.pack("!BBHII", 0x80, PCMA | (0x80 if n == 0 else 0), n, n * FRAME, ssrc)
        udp_length = 8 + len(rtp) + len(payload)
        udp = struct.pack("!HHHH", 40000, 40002, udp_length, 0)  # checksum 0: none (IPv4)
        ip = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_length, n & 0xFFFF, 0, 64, 17, 0,
                bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
            )
        )  # fmt: skip
        struct.pack_into("!H", ip, 10, _ip_checksum(bytes(ip)))
        ethernet = b"\x00" * 12 + b"\x08\x00"
        frame = ethernet + bytes(ip) + udp + rtp + payload
        micros = n * 20_000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return len(samples) / 8000
