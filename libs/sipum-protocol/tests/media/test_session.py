"""MediaSession on a fake clock: recording and playback compared numerically, symmetric
latching, RFC 4733 barge-in and stop digit, in-band digits, comfort noise, RTCP reports and BYE,
the receive queue. No sockets and no sleeps: time is an argument."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs import G722_INFO, PCMA, PCMU, CodecInfo
from sipum_protocol.media.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from sipum_protocol.media.events import (
    ChunkReady,
    DigitReceived,
    MediaEvent,
    PlaybackFinished,
    RecordingStopped,
    RtcpByeReceived,
    RtpSourceLatched,
)
from sipum_protocol.media.playback import Pause, PcmItem
from sipum_protocol.media.receiver import RtpReceiver
from sipum_protocol.media.recording import RecordingResult, RecordingSettings, StopReason
from sipum_protocol.media.rtcp import (
    RtcpBye,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    ntp_timestamp,
    parse_compound,
    serialise_compound,
)
from sipum_protocol.media.rtp import RtpPacket, is_rtcp
from sipum_protocol.media.session import INBAND_BATCH, QUEUE_BATCH, TIMER_GRID, MediaSession

CALLER = ("192.0.2.10", 40000)  # where the caller's RTP really comes from
SDP = ("198.51.100.7", 30000)  # what its SDP offer said (behind NAT: nobody there)
PTIME = 0.02


def speech(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * 8000)
    t = np.arange(n) / 8000
    x = (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * np.sin(2 * np.pi * 300 * t)
    x = 5000 * x + 500 * rng.standard_normal(n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class Caller:
    """The far end in memory: RTP packets whose sequence number and timestamp wrap soon."""

    def __init__(self, ssrc: int = 0x5EED) -> None:
        self.ssrc = ssrc
        self.seq = 65500
        self.ts = 0xFFFFFE00

    def packet(
        self, payload: bytes, *, pt: int = 0, marker: bool = False, ts: int | None = None
    ) -> bytes:
        packet = RtpPacket(
            payload_type=pt,
            sequence_number=self.seq & 0xFFFF,
            timestamp=(self.ts if ts is None else ts) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.seq += 1
        return bytes(packet)

    def audio(self, encoded: bytes, *, pt: int = 0, step: int = 160) -> list[bytes]:
        """One packet per *step* octets (20 ms of G.711 or G.722), timestamps advancing."""
        out = []
        for k in range(0, len(encoded), step):
            out.append(self.packet(encoded[k : k + step], pt=pt, marker=k == 0))
            self.ts += step
        return out

    def digit(self, event: int) -> list[bytes]:
        """RFC 4733 §2.5: start packet with marker, updates, three end packets, one timestamp."""
        start_ts = self.ts
        out = []
        for n in range(1, 6):
            end = n >= 4
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, 160 * min(n, 4))
            out.append(self.packet(payload, pt=101, marker=n == 1, ts=start_ts))
        self.ts += 160 * 4
        return out


class Driver:
    """What the asyncio driver does, on a fake clock: feed, drain a full queue, collect events
    and datagrams, fire the timer at ``next_timer()``."""

    def __init__(self, session: MediaSession, now: float = 0.0) -> None:
        self.session = session
        self.now = now
        self.events: list[tuple[float, MediaEvent]] = []
        self.sent: list[tuple[float, bytes, tuple[str, int]]] = []
        self.timer_calls = 0

    def collect(self) -> None:
        while (event := self.session.next_event()) is not None:
            self.events.append((self.now, event))
        for data, addr in self.session.datagrams_to_send():
            self.sent.append((self.now, data, addr))

    def receive(self, data: bytes, addr: tuple[str, int] = CALLER) -> None:
        if self.session.receive_datagram(data, addr, self.now) and self.session.queued_packets:
            self.session.drain_queue()
        self.collect()

    def advance(self, until: float) -> None:
        """Let the clock run to *until*, firing every timer that falls due on the way."""
        while (when := self.session.next_timer()) is not None and when <= until:
            self.now = max(self.now, when)
            self.timer_calls += 1
            assert self.timer_calls < 100_000, "the session's timer spins"
            self.session.handle_timer(self.now)
            self.collect()
        self.now = max(self.now, until)

    def stream(self, datagrams: Iterable[bytes], *, interval: float = PTIME) -> None:
        """Datagrams paced *interval* apart (timers firing in between), the first one now."""
        for k, data in enumerate(datagrams):
            if k:
                self.advance(self.now + interval)
            self.receive(data)

    def of(self, kind: type[MediaEvent]) -> list[MediaEvent]:
        return [event for _, event in self.events if isinstance(event, kind)]

    def when(self, kind: type[MediaEvent]) -> float:
        return next(t for t, event in self.events if isinstance(event, kind))

    def recorded(self) -> np.ndarray:
        chunks = [e.chunk for e in self.of(ChunkReady) if isinstance(e, ChunkReady)]
        assert [c.index for c in chunks] == list(range(len(chunks)))
        return np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")

    def result(self) -> RecordingResult:
        stopped = self.of(RecordingStopped)
        assert len(stopped) == 1 and isinstance(stopped[0], RecordingStopped)
        return stopped[0].result

    def rtp_sent(self, to: tuple[str, int] | None = None) -> list[tuple[float, RtpPacket]]:
        return [
            (t, RtpPacket.parse(d))
            for t, d, a in self.sent
            if not is_rtcp(d) and (to is None or a == to)
        ]


def new_session(codec: CodecInfo = PCMU, **kwargs: object) -> MediaSession:
    kwargs.setdefault("remote", SDP)
    return MediaSession(codec=codec, now=0.0, rng=random.Random(3), **kwargs)  # type: ignore[arg-type]


# -- recording ------------------------------------------------------------------------------------


def test_records_a_g711_stream_bit_exact_with_chunks_during_the_call() -> None:
    driver = Driver(new_session())
    caller = Caller()
    driver.session.record(RecordingSettings(flush_interval=0.5), now=0.0)
    audio = speech(2.0)
    encoded = ulaw_encode(audio)
    driver.stream(caller.audio(encoded))
    # committed audio comes out while the caller talks (what a crash can lose is bounded)
    during = [t for t, e in driver.events if isinstance(e, ChunkReady)]
    assert len(during) >= 2 and during[0] <= 1.1
    driver.advance(driver.now + 0.2)
    driver.session.hangup(now=driver.now)
    driver.collect()
    result = driver.result()
    assert result.reason is StopReason.HANGUP and not result.discarded
    assert np.array_equal(driver.recorded(), ulaw_decode(encoded))  # nothing lost or added
    assert isinstance(driver.events[-1][1], RecordingStopped)  # after its last chunk
    source = driver.session.receiver.source
    assert source is not None and source.lost == 0
    assert driver.session.recording is None


def test_lost_packets_become_silence_of_the_right_length() -> None:
    driver = Driver(new_session(PCMA))
    caller = Caller()
    driver.session.record(now=0.0)
    audio = speech(1.6)
    encoded = alaw_encode(audio)
    packets = caller.audio(encoded, pt=8)
    del packets[20:22]  # lost on the way
    for k, data in enumerate(packets):
        driver.advance((k + (2 if k >= 20 else 0)) * PTIME)
        driver.receive(data)
    driver.advance(driver.now + 0.3)
    driver.session.hangup(now=driver.now)
    driver.collect()
    expected = alaw_decode(encoded).copy()
    expected[20 * 160 : 22 * 160] = 0
    assert np.array_equal(driver.recorded(), expected)


def test_records_g722_at_16khz_decoded_as_packet_by_packet() -> None:
    from sipum_protocol.media.codecs import create_decoder, create_encoder

    driver = Driver(new_session(G722_INFO))
    driver.session.record(RecordingSettings(max_silence=3.0), now=0.0)  # rate from the codec
    t = np.arange(32000) / 16000
    audio = np.round(6000 * np.sin(2 * np.pi * 440 * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 3 * t)))
    audio = audio.astype(np.int16)
    encoder = create_encoder("G722")
    payloads = [encoder.encode(audio[k : k + 320]) for k in range(0, len(audio), 320)]
    assert all(len(p) == 160 for p in payloads)
    caller = Caller()
    # RTP clock 8000 for G.722 (RFC 3551 §4.5.2): 160 timestamp units per 20 ms
    driver.stream(caller.audio(b"".join(payloads), pt=9))
    driver.advance(driver.now + 0.2)
    driver.session.hangup(now=driver.now)
    driver.collect()
    result = driver.result()
    assert result.sample_rate == 16000 and result.samples == len(audio)
    pcm = driver.recorded()
    decoder = create_decoder("G722")
    reference = np.concatenate([decoder.decode(p) for p in payloads])
    assert np.array_equal(pcm, reference)  # batched decoding equals packet-by-packet decoding
    best = max(  # and it is the audio that was sent (G.722 delays it by a few samples)
        np.corrcoef(pcm[lag : lag + 30000].astype(float), audio[:30000].astype(float))[0, 1]
        for lag in range(40)
    )
    assert best > 0.98


def test_hash_stops_the_recording_where_its_tone_began() -> None:
    driver = Driver(new_session())
    caller = Caller()
    driver.session.record(now=0.0)
    audio = speech(1.5)
    driver.stream(caller.audio(ulaw_encode(audio)))
    driver.advance(driver.now + PTIME)
    driver.stream(caller.digit(11))  # '#'
    result = driver.result()
    assert result.reason is StopReason.DTMF and result.digit == "#"
    # it stopped on the key going down, the first of the digit's packets
    assert driver.when(RecordingStopped) == pytest.approx(1.5, abs=0.001)
    pcm = driver.recorded()
    assert len(pcm) == len(audio)  # cut where the digit began: nothing after it
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio)))
    assert [e.digit for e in driver.of(DigitReceived) if isinstance(e, DigitReceived)] == ["#"]


def test_silent_caller_times_out_as_silence() -> None:
    driver = Driver(new_session())
    caller = Caller()
    driver.session.record(RecordingSettings(max_silence=0.6), now=0.0)
    driver.stream(caller.audio(ulaw_encode(speech(0.3))))  # then the phone goes quiet
    driver.advance(3.0)
    result = driver.result()
    assert result.reason is StopReason.SILENCE and result.discarded
    # 0.6 s after the last packet, late by at most the timer grid
    assert 0.28 + 0.6 <= driver.when(RecordingStopped) <= 0.28 + 0.6 + TIMER_GRID + 1e-9


def test_a_waiting_recording_does_not_spin_the_timer() -> None:
    # Regression: with no audio yet the recording's flush deadline stayed in the past and the
    # endpoint's timer fired on every loop turn (found by the receive-cost benchmark).
    driver = Driver(new_session())
    driver.session.record(RecordingSettings(flush_interval=0.1, max_silence=5.0), now=0.0)
    driver.advance(0.6)
    assert driver.session.recording is not None
    assert driver.timer_calls <= 12  # one per flush interval (0.1 s), not one per loop turn
    driver.session.hangup(now=driver.now)
    driver.collect()
    assert driver.result().reason is StopReason.HANGUP


def test_comfort_noise_packets_fill_the_pause() -> None:
    driver = Driver(new_session())
    caller = Caller()
    driver.session.record(now=0.0)
    first, second = ulaw_encode(speech(1.0)), ulaw_encode(speech(1.0, seed=5))
    driver.stream(caller.audio(first))
    driver.advance(driver.now + PTIME)
    driver.receive(caller.packet(bytes([60]), pt=13))  # RFC 3389: level 60 -dBov
    caller.ts += 8 * 160 * 5  # 0.8 s without audio
    driver.advance(driver.now + 0.8)
    driver.stream(caller.audio(second))
    driver.advance(driver.now + 0.2)
    driver.session.hangup(now=driver.now)
    driver.collect()
    assert driver.result().samples == 8000 + 6400 + 8000
    pcm = driver.recorded()
    pause = pcm[8000:14400].astype(float)
    assert 20 < np.sqrt(np.mean(pause**2)) < 45  # 60 -dBov is RMS ~33
    assert np.array_equal(pcm[14400:], ulaw_decode(second))


def test_inband_hash_stops_a_call_without_telephone_event() -> None:
    from sipum_protocol.media.dtmf import dtmf_tone

    driver = Driver(new_session(telephone_event_pt=None))
    caller = Caller()
    driver.session.record(now=0.0)
    audio = np.concatenate(
        [speech(1.5), dtmf_tone("#", 0.15, level_dbm0=-10.0), speech(0.6, seed=9)]
    )
    driver.stream(caller.audio(ulaw_encode(audio)))
    result = driver.result()
    assert result.reason is StopReason.DTMF and result.digit == "#"
    assert [e.digit for e in driver.of(DigitReceived) if isinstance(e, DigitReceived)] == ["#"]
    pcm = driver.recorded()
    assert abs(len(pcm) - 1.5 * 8000) <= 0.03 * 8000  # cut where the tone began
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio))[: len(pcm)])


def test_an_inband_digit_acts_while_the_key_is_down() -> None:
    # Without telephone-event the digit is in the audio, which the session queues in
    # batches: the queue is short for such calls, so a digit typed while nothing plays (a PIN
    # after the prompt) acts while its tone still sounds, not up to a second later.
    from sipum_protocol.media.dtmf import dtmf_tone

    driver = Driver(new_session(telephone_event_pt=None))
    caller = Caller()
    tone = dtmf_tone("5", 0.2, level_dbm0=-10.0)
    audio = ulaw_encode(np.concatenate([speech(0.4, seed=3), tone, speech(0.6, seed=4)]))
    driver.stream(caller.audio(audio))
    heard = [(t, e.digit) for t, e in driver.events if isinstance(e, DigitReceived)]
    assert [digit for _, digit in heard] == ["5"]
    # detection needs about 40 ms of the tone, the queue holds at most 100 ms of audio
    tone_at = 0.4
    assert heard[0][0] - tone_at < 0.25, heard[0][0] - tone_at


# -- playback ---------------------------------------------------------------------------------------


def test_playback_is_paced_intact_and_marked_once() -> None:
    driver = Driver(new_session())
    audio = speech(0.6, seed=3)
    playback = driver.session.play([PcmItem(audio, 8000)], now=0.0)
    driver.advance(2.0)
    assert playback.finished and playback.interrupted_by is None
    finished = driver.of(PlaybackFinished)
    assert len(finished) == 1 and isinstance(finished[0], PlaybackFinished)
    assert finished[0].playback is playback and driver.session.playback is None
    sent = driver.rtp_sent(SDP)
    assert len(sent) == 30
    # absolute pacing: packet k leaves at k·20 ms
    assert [t for t, _ in sent] == pytest.approx([k * PTIME for k in range(30)], abs=1e-9)
    packets = [p for _, p in sent]
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert [p.sequence_number for p in packets] == [
        (packets[0].sequence_number + k) & 0xFFFF for k in range(30)
    ]
    pcm = ulaw_decode(b"".join(p.payload for p in packets))
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio)))
    assert np.corrcoef(pcm.astype(float), audio.astype(float))[0, 1] > 0.99
    with pytest.raises(RuntimeError, match="already playing"):
        driver.session.play([Pause(1.0)], now=driver.now)
        driver.session.play([Pause(1.0)], now=driver.now)


def test_plays_rendered_prompts_as_the_files_hold_them(tmp_path: Path) -> None:
    from sipum_protocol.media.playback import read_wav
    from sipum_protocol.media.prompts import PromptLibrary

    library = PromptLibrary(tmp_path, rates=(8000,))
    paths = library.paths(["digit-1", "beep"], 8000)
    driver = Driver(new_session())
    playback = driver.session.play(paths, now=0.0)
    driver.advance(10.0)
    assert playback.finished
    packets = [p for _, p in driver.rtp_sent()]
    assert len(packets) == playback.packets_sent
    received = ulaw_decode(b"".join(p.payload for p in packets))
    expected = []
    for path in paths:
        pcm, rate = read_wav(path)
        assert rate == 8000
        padded = np.zeros(-(-len(pcm) // 160) * 160, dtype=np.int16)  # last frame padded
        padded[: len(pcm)] = pcm
        expected.append(padded)
    reference = np.concatenate(expected)
    assert np.array_equal(received, ulaw_decode(ulaw_encode(reference)))
    assert np.corrcoef(received.astype(float), reference.astype(float))[0, 1] > 0.99


def test_barge_in_with_an_rfc4733_digit_on_the_key_going_down() -> None:
    driver = Driver(new_session())
    caller = Caller()
    playback = driver.session.play([PcmItem(speech(5.0), 8000)], now=0.0, barge_in="0123456789#")
    driver.advance(0.3)
    driver.stream(caller.digit(5), interval=0.004)
    assert playback.interrupted_by == "5"
    assert driver.when(PlaybackFinished) == pytest.approx(0.3)  # its first packet
    assert 0.3 <= playback.position <= 0.32
    # the redundant end packets gave one digit, after the playback stopped
    digits = [(t, e.digit) for t, e in driver.events if isinstance(e, DigitReceived)]
    assert [d for _, d in digits] == ["5"] and digits[0][0] > driver.when(PlaybackFinished)
    kinds = [type(e) for _, e in driver.events]
    assert kinds.index(PlaybackFinished) < kinds.index(DigitReceived)
    sent_after = [t for t, _ in driver.rtp_sent() if t > 0.3]
    assert sent_after == []


def test_a_digit_whose_first_packets_were_lost_still_acts_at_its_end() -> None:
    driver = Driver(new_session())
    caller = Caller()
    playback = driver.session.play([PcmItem(speech(3.0), 8000)], now=0.0, barge_in="#")
    driver.advance(0.5)
    driver.stream(caller.digit(11)[3:], interval=0.004)  # only the end packets arrive
    assert playback.interrupted_by == "#"
    assert [e.digit for e in driver.of(DigitReceived) if isinstance(e, DigitReceived)] == ["#"]


# -- symmetric RTP ----------------------------------------------------------------------------------


def test_symmetric_rtp_latches_onto_the_real_source_only() -> None:
    driver = Driver(new_session())
    session = driver.session
    assert session.remote_rtcp == (SDP[0], SDP[1] + 1)  # RTP port + 1 without a=rtcp
    session.play([Pause(0.06)], now=0.0)
    driver.advance(0.1)
    assert len(driver.rtp_sent(SDP)) == 3  # before latching: the SDP address
    # a stray datagram that is not RTP of a negotiated type does not divert the stream
    caller = Caller()
    driver.receive(b"hello, not rtp")
    driver.receive(caller.packet(bytes(160), pt=96))
    assert not session.latched and session.remote == SDP
    driver.receive(caller.packet(bytes(160)))
    assert session.latched and session.remote == CALLER
    assert driver.of(RtpSourceLatched) == [RtpSourceLatched(CALLER)]
    session.play([Pause(0.06)], now=driver.now)
    driver.advance(driver.now + 0.1)
    assert len(driver.rtp_sent(CALLER)) == 3
    assert len(driver.rtp_sent(SDP)) == 3  # nothing more to the SDP address
    # RTCP latches on its own, onto the first valid RTCP
    rtcp_source = (CALLER[0], 40001)
    driver.receive(b"\x80\xc9junk", rtcp_source)
    assert not session.rtcp_latched
    report = RtcpReceiverReport(ssrc=caller.ssrc, reports=[])
    driver.receive(serialise_compound([report]), rtcp_source)
    assert session.rtcp_latched and session.remote_rtcp == rtcp_source


# -- RTCP -------------------------------------------------------------------------------------------


def test_rtcp_reports_sdes_and_bye_on_close() -> None:
    offset = 1_700_000_000.0
    session = new_session(
        remote_rtcp=("198.51.100.7", 30011),
        rtcp_interval=0.1,
        cname="rec@test",
        wallclock_offset=offset,
    )
    driver = Driver(session)
    caller = Caller()
    session.record(now=0.0)
    driver.stream(caller.audio(ulaw_encode(speech(0.4))))
    driver.advance(driver.now + 0.3)
    session.play([Pause(0.1)], now=driver.now)
    driver.advance(driver.now + 0.4)
    session.close(now=driver.now)
    driver.collect()
    assert session.next_timer() is None
    compounds = [(t, parse_compound(d)) for t, d, a in driver.sent if a == ("198.51.100.7", 30011)]
    assert len(compounds) >= 3
    kinds = [type(c[0]) for _, c in compounds]
    assert RtcpReceiverReport in kinds and RtcpSenderReport in kinds
    assert all(
        isinstance(c[1], RtcpSdes) and c[1].chunks[0].cname == "rec@test" for _, c in compounds
    )
    rr = next(c[0] for _, c in compounds if isinstance(c[0], RtcpReceiverReport) and c[0].reports)
    assert rr.reports[0].ssrc == caller.ssrc and rr.reports[0].packets_lost == 0
    # randomised intervals of 0.5-1.5 times the mean (RFC 3550 §6.3.1), never closer
    times = [t for t, _ in compounds]
    assert all(b - a >= 0.05 - 1e-9 for a, b in zip(times, times[1:-1], strict=False))
    last_at, last = compounds[-1]
    assert isinstance(last[-1], RtcpBye) and session.stream.ssrc in last[-1].sources
    sr = last[0]
    assert isinstance(sr, RtcpSenderReport) and sr.packet_count == 5
    assert sr.ntp_timestamp == ntp_timestamp(last_at + offset)  # §6.4.1: wall clock of now
    # nothing is sent after the BYE
    session.handle_timer(driver.now + 10)
    driver.collect()
    assert driver.sent[-1][0] == last_at


def test_rtcp_from_the_caller_feeds_lsr_and_reports_its_bye() -> None:
    session = new_session()
    driver = Driver(session)
    caller = Caller()
    driver.stream(caller.audio(ulaw_encode(speech(0.2))))
    sr = RtcpSenderReport(ssrc=caller.ssrc, ntp_timestamp=ntp_timestamp(1e9), rtp_timestamp=0)
    driver.receive(serialise_compound([sr]), (CALLER[0], CALLER[1] + 1))
    blocks = session.receiver.report_blocks(driver.now + 1.0)
    assert blocks and blocks[0].lsr != 0 and blocks[0].dlsr > 0
    driver.receive(bytes(RtcpBye([caller.ssrc], reason="gone")), (CALLER[0], CALLER[1] + 1))
    assert driver.of(RtcpByeReceived) == [RtcpByeReceived((caller.ssrc,), "gone")]


# -- the receive queue ------------------------------------------------------------------------------


def test_plain_audio_is_queued_in_batches_and_anything_else_drains_first() -> None:
    session = new_session()
    caller = Caller()
    packets = caller.audio(ulaw_encode(speech(3.0)))
    # the first packet latches and goes through the receiver
    assert session.receive_datagram(packets[0], CALLER, 0.0) and session.queued_packets == 0
    ready = [session.receive_datagram(p, CALLER, k * PTIME) for k, p in enumerate(packets[1:], 1)]
    assert ready.index(True) == QUEUE_BATCH - 1 and ready.count(True) == 1
    assert session.queued_packets == len(packets) - 1
    session.drain_queue()
    source = session.receiver.source
    assert session.queued_packets == 0 and source is not None and source.received == len(packets)
    # a recording queues no more than it decodes at once
    recording = session.record(RecordingSettings(flush_interval=0.4), now=3.0)
    assert recording.batch == 10
    ready = [session.receive_datagram(p, CALLER, 3.0) for p in caller.audio(bytes(160 * 12))]
    assert ready.index(True) == 9
    # a telephone-event drains the queue before it acts (digits see the audio before them)
    session.receive_datagram(caller.digit(1)[0], CALLER, 3.1)
    assert session.queued_packets == 0


def test_a_call_without_telephone_event_queues_little() -> None:
    session = new_session(telephone_event_pt=None)
    caller = Caller()
    packets = caller.audio(ulaw_encode(speech(1.0)))
    session.receive_datagram(packets[0], CALLER, 0.0)
    ready = [session.receive_datagram(p, CALLER, 0.0) for p in packets[1:]]
    assert ready.index(True) == INBAND_BATCH - 1


def test_fast_receive_path_matches_the_full_receiver() -> None:
    """The session's receive path (accept_run, else receive) must release the same packets and
    keep the same RFC 3550 figures as receive alone, on a stream with loss, reordering,
    duplicates, a wrap and an SSRC change."""
    rng = random.Random(7)
    stream = []
    for k in range(3000):
        ssrc = 1 if k < 2000 else 2
        stream.append(
            RtpPacket(
                payload_type=0,
                sequence_number=(65000 + k) & 0xFFFF,
                timestamp=(k * 160) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=bytes([k & 0xFF]) * 160,
            )
        )
    arrivals: list[RtpPacket] = []
    i = 0
    while i < len(stream):
        r = rng.random()
        if r < 0.03:
            i += 1  # lost
        elif r < 0.06 and i + 1 < len(stream):
            arrivals += [stream[i + 1], stream[i]]  # swapped
            i += 2
        elif r < 0.08:
            arrivals += [stream[i], stream[i]]  # duplicated
            i += 1
        else:
            arrivals.append(stream[i])
            i += 1
    full = RtpReceiver(clock_rate=8000)
    fast = RtpReceiver(clock_rate=8000)
    out_full: list[tuple[int, int]] = []
    out_fast: list[tuple[int, int]] = []
    shortcuts = 0
    for n, packet in enumerate(arrivals):
        now = n * 0.02 + rng.uniform(0, 0.03)
        out_full += [(p.ssrc, p.sequence_number) for p in full.receive(bytes(packet), now)]
        out_full += [(p.ssrc, p.sequence_number) for p in full.poll(now)]
        data = bytes(packet)
        if fast.accept_run(data, len(data), [now]) == 1:
            shortcuts += 1
            out_fast.append((packet.ssrc, packet.sequence_number))
        else:
            out_fast += [(p.ssrc, p.sequence_number) for p in fast.receive(bytes(packet), now)]
        out_fast += [(p.ssrc, p.sequence_number) for p in fast.poll(now)]
    assert shortcuts > len(arrivals) * 0.7
    assert out_fast == out_full
    assert full.source is not None and fast.source is not None
    for name in ("max_seq", "cycles", "received", "jitter", "base_seq"):
        assert getattr(fast.source, name) == getattr(full.source, name), name
    for name in ("released", "late", "duplicates", "skipped"):
        assert getattr(fast.buffer, name) == getattr(full.buffer, name), name
    assert fast.report_blocks(100.0) == full.report_blocks(100.0)


def test_a_failing_owner_does_not_stall_the_other_queues(caplog: pytest.LogCaptureFixture) -> None:
    # Full queues of many calls are drained together after the loop's I/O round: an exception
    # in one call's receive path must not leave the others' audio queued.
    from sipum_protocol.media.drain import DrainScheduler

    class Loop:
        def __init__(self) -> None:
            self.soon: list[object] = []

        def call_soon(self, callback: object) -> None:
            self.soon.append(callback)

    class Owner:
        def __init__(self, port: int, *, broken: bool = False) -> None:
            self.local_port = port
            self.broken = broken
            self.drained = 0

        def process_queue(self) -> None:
            if self.broken:
                raise RuntimeError("bug in one call")
            self.drained += 1

    loop = Loop()
    scheduler = DrainScheduler(loop)  # type: ignore[arg-type]
    owners = [Owner(20000, broken=True), Owner(20002), Owner(20004)]
    for owner in owners:
        scheduler.schedule(owner)
    assert len(loop.soon) == 1  # one callback for the whole round
    loop.soon.pop()()  # type: ignore[operator]
    assert [o.drained for o in owners] == [0, 1, 1]
    assert "RTP receive failed" in caplog.text
    scheduler.schedule(owners[1])
    assert len(loop.soon) == 1  # a new round
