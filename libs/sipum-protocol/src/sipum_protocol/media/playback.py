"""Playback engine: WAV files / prompt sequences → paced RTP packets (sans-I/O).

Theory of operation
-------------------
:class:`RtpSendStream` is one outgoing RTP stream of a call (RFC 3550 §5.1): a random SSRC,
random initial sequence number and timestamp (§5.1: "SHOULD be random"), and the packet and octet
counts a sender report needs (§6.4.1). It outlives any one playback, so a greeting, the beep and
later menu prompts all go out as one continuous source.

:class:`PlaybackSession` plays a list of items (WAV paths, PCM arrays, pauses) on such a stream.
Items are loaded when their turn comes (a long greeting is not held in memory before it plays),
converted to the codec's audio rate with the codecs' resampler, cut into ``ptime`` frames (the
last frame is padded with silence) and encoded one frame per packet. Pacing is absolute: packet
``n`` is due at ``start + n·ptime``; the caller asks :meth:`~PlaybackSession.next_due` and calls
:meth:`~PlaybackSession.packets_due` with the current time, so a late timer never makes the
stream drift. If the caller falls more than ``max_late`` behind (a stalled process), the missed
packets are skipped rather than sent in a burst — the timestamps still advance with the clock
and the next packet carries the marker bit, as after silence (RFC 3551 §4.1).

Barge-in: :meth:`~PlaybackSession.interrupt` with a DTMF digit stops the whole sequence if the
digit is one of ``barge_in`` and reports which digit did it.
"""

from __future__ import annotations

import random
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .codecs import resample
from .codecs.base import CodecInfo, Encoder, Pcm
from .rtcp import RtcpReportBlock, RtcpSenderReport, ntp_timestamp
from .rtp import RtpPacket


def read_wav(path: Path | str | BinaryIO) -> tuple[Pcm, int]:
    """A 16-bit PCM WAV file (a path or a binary file object) as (mono int16 samples, sample
    rate); stereo is mixed down."""
    with wave.open(path if not isinstance(path, str | Path) else str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels = w.getnchannels()
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    return data.astype(np.int16, copy=False), rate


@dataclass(frozen=True)
class Pause:
    """An item of silence between prompts."""

    seconds: float


@dataclass(frozen=True)
class PcmItem:
    """Audio already in memory."""

    pcm: Pcm
    sample_rate: int


PlaybackItem = Path | str | Pause | PcmItem


class RtpSendStream:
    """One outgoing RTP stream: identity, sequence numbers, timestamps, SR counters."""

    def __init__(
        self,
        *,
        payload_type: int,
        clock_rate: int,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence = rng.getrandbits(16) if sequence is None else sequence
        self._ts_origin = rng.getrandbits(32) if timestamp is None else timestamp
        self._clock_origin: float | None = None
        self.packet_count = 0
        self.octet_count = 0

    def timestamp_at(self, now: float) -> int:
        """RTP timestamp of the sampling instant *now*: the stream's clock runs with the wall
        clock from its first packet on, so a pause between playbacks advances it too."""
        if self._clock_origin is None:
            self._clock_origin = now
        return (self._ts_origin + round((now - self._clock_origin) * self.clock_rate)) & 0xFFFFFFFF

    def packet(self, payload: bytes, *, timestamp: int, marker: bool) -> bytes:
        data = bytes(
            RtpPacket(
                payload_type=self.payload_type,
                sequence_number=self.sequence,
                timestamp=timestamp,
                ssrc=self.ssrc,
                payload=payload,
                marker=marker,
            )
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return data

    def sender_report(
        self, now: float, *, wallclock: float, reports: Sequence[RtcpReportBlock] = ()
    ) -> RtcpSenderReport:
        """An SR for this stream sent at loop time *now* = Unix time *wallclock*; its RTP
        timestamp is that same instant on the stream clock (RFC 3550 §6.4.1)."""
        return RtcpSenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_timestamp(wallclock),
            rtp_timestamp=self.timestamp_at(now),
            packet_count=self.packet_count,
            octet_count=self.octet_count,
            reports=list(reports),
        )


class PlaybackSession:
    """Streams *items* on *stream* with absolute pacing (see module docstring).

    ``next_due()`` → when to call ``packets_due(now)`` next (``None`` once finished);
    ``interrupt(digit)`` for barge-in; ``finished``, ``interrupted_by``, ``position``.
    """

    def __init__(
        self,
        encoder: Encoder,
        items: Sequence[PlaybackItem],
        *,
        now: float,
        stream: RtpSendStream | None = None,
        payload_type: int | None = None,
        ptime: float = 0.02,
        barge_in: str = "",
        max_late: float = 0.5,
    ) -> None:
        info: CodecInfo = encoder.info
        self.encoder = encoder
        self.info = info
        self.stream = stream or RtpSendStream(
            payload_type=info.payload_type if payload_type is None else payload_type,
            clock_rate=info.clock_rate,
        )
        self.ptime = ptime
        self.barge_in = barge_in
        self.max_late = max_late
        self._frame = round(info.sample_rate * ptime)
        self._ts_step = round(info.clock_rate * ptime)
        self._items = list(items)
        self._item_index = -1
        self._pcm: Pcm = np.zeros(0, dtype=np.int16)
        self._offset = 0  # samples of the current item already sent
        self._start = now
        self._n = 0  # packets scheduled so far (sent or skipped)
        self._first_ts = self.stream.timestamp_at(now)
        self._marker = True  # talkspurt start (RFC 3551 §4.1)
        self.packets_sent = 0
        self.packets_skipped = 0
        self.interrupted_by: str | None = None
        self.finished = False
        self._advance_item()

    # -- state --------------------------------------------------------------------------------

    @property
    def item_index(self) -> int:
        """Index of the item playing now (``len(items)`` when all played)."""
        return self._item_index

    @property
    def position(self) -> float:
        """Seconds of the sequence played (sent or skipped) so far."""
        return self._n * self.ptime

    def next_due(self) -> float | None:
        return None if self.finished else self._start + self._n * self.ptime

    def interrupt(self, digit: str) -> bool:
        """Barge-in: stop the sequence if *digit* may interrupt it. True if it did."""
        if self.finished or digit not in self.barge_in:
            return False
        self.interrupted_by = digit
        self.finished = True
        return True

    def stop(self) -> None:
        """Stop without a digit (the call ended)."""
        self.finished = True

    # -- packets -------------------------------------------------------------------------------

    def packets_due(self, now: float) -> list[bytes]:
        """Every packet due at or before *now*, in order (packets more than ``max_late`` late are
        skipped)."""
        out: list[bytes] = []
        while not self.finished:
            due = self._start + self._n * self.ptime
            if due > now + 1e-9:
                break
            frame = self._next_frame()
            if frame is None:
                self.finished = True
                break
            timestamp = (self._first_ts + self._n * self._ts_step) & 0xFFFFFFFF
            self._n += 1
            if now - due > self.max_late:
                self.packets_skipped += 1
                self._marker = True
                continue
            payload = self.encoder.encode(frame)
            out.append(self.stream.packet(payload, timestamp=timestamp, marker=self._marker))
            self._marker = False
            self.packets_sent += 1
        return out

    def _next_frame(self) -> Pcm | None:
        frame = self._frame
        while self._offset >= len(self._pcm):
            if not self._advance_item():
                return None
        chunk = self._pcm[self._offset : self._offset + frame]
        self._offset += frame
        if len(chunk) < frame:
            chunk = np.concatenate([chunk, np.zeros(frame - len(chunk), dtype=np.int16)])
        return chunk

    def _advance_item(self) -> bool:
        self._item_index += 1
        self._offset = 0
        if self._item_index >= len(self._items):
            self._pcm = np.zeros(0, dtype=np.int16)
            return False
        self._pcm = self._load(self._items[self._item_index])
        return True

    def _load(self, item: PlaybackItem) -> Pcm:
        rate = self.info.sample_rate
        if isinstance(item, Pause):
            return np.zeros(round(item.seconds * rate), dtype=np.int16)
        if isinstance(item, PcmItem):
            pcm, item_rate = item.pcm, item.sample_rate
        else:
            pcm, item_rate = read_wav(item)
        if item_rate != rate:
            pcm = resample(pcm, item_rate, rate)
        return pcm
