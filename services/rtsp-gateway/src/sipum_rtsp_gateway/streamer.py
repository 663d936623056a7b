"""Sends one RTSP session's RTP and RTCP, paced, over UDP or the RTSP connection.

The RTP stream (SSRC, sequence, timestamp clock) lives as long as the session, so PAUSE and a
later PLAY — or a seek — continue it; each PLAY starts a new talkspurt (marker bit). RTCP: an
SR + SDES CNAME when playing starts and every 5 s, and SR + SDES + BYE when the message ends
(ffmpeg ends its read only on BYE; GStreamer on BYE or the end of the range).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import numpy as np
from sipum_protocol.media.codecs import create_encoder
from sipum_protocol.media.playback import PcmItem, PlaybackSession, RtpSendStream
from sipum_protocol.media.rtcp import RtcpBye, RtcpSdes, serialise_compound

from sipum_rtsp_gateway.audio import STREAM_RATE

log = logging.getLogger("sipum.net.rtsp")
RTCP_INTERVAL = 5.0


class SessionStreamer:
    def __init__(
        self,
        pcm: np.ndarray,
        *,
        ssrc: int,
        send_rtp: Callable[[bytes], None],
        send_rtcp: Callable[[bytes], None],
        cname: str,
    ) -> None:
        self.pcm = pcm
        self.send_rtp = send_rtp
        self.send_rtcp = send_rtcp
        self.cname = cname
        self.stream = RtpSendStream(payload_type=0, clock_rate=STREAM_RATE, ssrc=ssrc)
        self.encoder = create_encoder("PCMU")
        self.position = 0.0
        self._playing: PlaybackSession | None = None
        self._play_start = 0.0
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    @property
    def duration(self) -> float:
        return len(self.pcm) / STREAM_RATE

    def play(self, start: float | None, end: float) -> tuple[int, int]:
        """Start sending from ``start`` (None: where paused); returns (seq, rtptime) of the
        first packet for ``RTP-Info``."""
        self._stop_task()
        begin = self.position if start is None else start
        loop = asyncio.get_running_loop()
        now = loop.time()
        seq = self.stream.sequence
        rtptime = self.stream.timestamp_at(now)
        chunk = self.pcm[round(begin * STREAM_RATE) : round(end * STREAM_RATE)]
        self._playing = PlaybackSession(
            self.encoder, [PcmItem(chunk, STREAM_RATE)], now=now, stream=self.stream
        )
        self._play_start = begin
        self.finished.clear()
        self._task = loop.create_task(self._run(self._playing))
        return seq, rtptime

    def pause(self) -> None:
        if self._playing is not None:
            self.position = min(self.duration, self._play_start + self._playing.position)
        self._stop_task()

    def stop(self) -> None:
        self._stop_task()

    def _stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._playing = None

    def _rtcp(self, *, bye: bool) -> None:
        loop = asyncio.get_running_loop()
        report = self.stream.sender_report(loop.time(), wallclock=time.time())
        packets: list[object] = [report, RtcpSdes.cname_for(self.stream.ssrc, self.cname)]
        if bye:
            packets.append(RtcpBye([self.stream.ssrc], "end of message"))
        with contextlib.suppress(OSError):
            self.send_rtcp(serialise_compound(packets))  # type: ignore[arg-type]

    async def _run(self, playback: PlaybackSession) -> None:
        loop = asyncio.get_running_loop()
        self._rtcp(bye=False)
        next_report = loop.time() + RTCP_INTERVAL
        try:
            while True:
                due = playback.next_due()
                if due is None:
                    break
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = loop.time()
                for packet in playback.packets_due(now):
                    self.send_rtp(packet)
                if now >= next_report:
                    self._rtcp(bye=False)
                    next_report = now + RTCP_INTERVAL
            self.position = self.duration
            self._rtcp(bye=True)
        except OSError as exc:
            log.info("stream stopped: %s", exc)
        finally:
            self.finished.set()
