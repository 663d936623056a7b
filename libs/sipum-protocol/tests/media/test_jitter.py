"""Jitter buffer: reordering, duplicates, late packets, bounded wait and size, wrap."""

import random

import pytest
from sipum_protocol.media.jitter import JitterBuffer
from sipum_protocol.media.rtp import RtpPacket


def pkt(seq: int) -> RtpPacket:
    seq &= 0xFFFF
    return RtpPacket(payload_type=0, sequence_number=seq, timestamp=seq * 160, ssrc=1)


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence_number for p in packets]


def test_in_order_packets_pass_straight_through() -> None:
    jb = JitterBuffer()
    for i in range(10):
        assert seqs(jb.push(pkt(100 + i), now=i * 0.02)) == [100 + i]
    assert jb.next_deadline() is None and jb.released == 10


def test_reordered_packets_come_out_in_order() -> None:
    jb = JitterBuffer()
    out = []
    for s in [1, 3, 2, 5, 4, 6]:
        out += jb.push(pkt(s), now=0.0)
    assert seqs(out) == [1, 2, 3, 4, 5, 6]
    assert jb.skipped == 0 and jb.late == 0


def test_duplicates_dropped_whether_held_or_released() -> None:
    jb = JitterBuffer()
    out = jb.push(pkt(1), 0.0) + jb.push(pkt(1), 0.0)  # released duplicate
    out += jb.push(pkt(3), 0.0) + jb.push(pkt(3), 0.0)  # held duplicate
    out += jb.push(pkt(2), 0.0)
    assert seqs(out) == [1, 2, 3]
    assert jb.duplicates == 2


def test_gap_given_up_after_max_delay_and_late_packet_dropped() -> None:
    jb = JitterBuffer(max_delay=0.06)
    assert seqs(jb.push(pkt(1), 0.00)) == [1]
    assert jb.push(pkt(3), 0.04) == []
    assert jb.push(pkt(4), 0.06) == []
    assert jb.next_deadline() == pytest.approx(0.10)
    assert jb.poll(0.099) == []
    assert seqs(jb.poll(0.10)) == [3, 4]
    assert jb.skipped == 1
    assert jb.push(pkt(2), 0.12) == []  # arrived after its slot was given up
    assert jb.late == 1 and jb.duplicates == 0
    assert seqs(jb.push(pkt(5), 0.12)) == [5]


def test_capacity_bounds_the_number_of_held_packets() -> None:
    jb = JitterBuffer(capacity=4, max_delay=10.0)
    jb.push(pkt(0), 0.0)
    out = []
    for s in range(2, 8):  # 1 is lost; 2..5 fill the buffer, 6 overflows it
        out += jb.push(pkt(s), 0.0)
        assert len(jb) <= 4
    assert seqs(out) == [2, 3, 4, 5, 6, 7]
    assert jb.overflows == 1 and jb.skipped == 1


def test_sequence_wrap_is_transparent() -> None:
    jb = JitterBuffer()
    order = [65533, 65535, 65534, 1, 0, 2, 3]
    out = []
    for s in order:
        out += jb.push(pkt(s), 0.0)
    assert seqs(out) == [65533, 65534, 65535, 0, 1, 2, 3]
    assert jb.late == 0


def test_flush_releases_everything_in_order() -> None:
    jb = JitterBuffer()
    jb.push(pkt(10), 0.0)
    for s in [14, 12, 13]:
        jb.push(pkt(s), 0.0)
    assert seqs(jb.flush()) == [12, 13, 14]
    assert len(jb) == 0 and jb.skipped == 1


def test_random_reordering_within_window_loses_nothing() -> None:
    rng = random.Random(5)
    n = 3000
    arrivals = [(i * 0.02 + rng.uniform(0, 0.05), i) for i in range(n)]  # up to 50 ms jitter
    arrivals.sort()
    jb = JitterBuffer(capacity=50, max_delay=0.1)
    out = []
    for t, i in arrivals:
        out += jb.poll(t)
        out += jb.push(pkt(i + 65000), t)
    out += jb.flush()
    assert seqs(out) == [(i + 65000) & 0xFFFF for i in range(n)]
    assert jb.skipped == jb.late == jb.duplicates == 0


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(capacity=0)
    with pytest.raises(ValueError):
        JitterBuffer(max_delay=-1)
