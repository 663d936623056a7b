"""RTP receive session: RFC 3550 A.1/A.3/A.8 statistics, re-sync, reports."""

import random

import pytest
from sipum_protocol.media.receiver import RtpReceiver
from sipum_protocol.media.rtcp import (
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    ntp_middle32,
    ntp_timestamp,
    parse_compound,
    serialise_compound,
)
from sipum_protocol.media.rtp import RtpPacket


def packet(seq: int, ts: int, ssrc: int = 0xABC) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=0,
            sequence_number=seq & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=b"\xff" * 160,
        )
    )


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence_number for p in packets]


def run(receiver: RtpReceiver, arrivals: list[tuple[float, bytes]]) -> list[RtpPacket]:
    out: list[RtpPacket] = []
    for now, data in arrivals:
        out += receiver.poll(now)
        out += receiver.receive(data, now)
    return out + receiver.flush()


def test_clean_stream_statistics() -> None:
    rx = RtpReceiver(clock_rate=8000, ssrc=7)
    out = run(rx, [(i * 0.02, packet(1000 + i, 5000 + 160 * i)) for i in range(100)])
    assert seqs(out) == list(range(1000, 1100))
    src = rx.source
    assert src is not None
    assert (src.expected, src.received, src.lost) == (100, 100, 0)
    assert src.jitter == pytest.approx(0.0, abs=1e-6)
    (block,) = rx.report_blocks(now=2.0)
    assert block.ssrc == 0xABC and block.fraction_lost == 0 and block.highest_sequence == 1099


def test_loss_accounting_cumulative_and_fraction_per_interval() -> None:
    rx = RtpReceiver(clock_rate=8000)
    lost = {5, 6, 7, 20}  # 4 of the first 40
    run(rx, [(i * 0.02, packet(i, 160 * i)) for i in range(40) if i not in lost])
    first = rx.report_blocks(now=1.0)[0]
    assert first.packets_lost == 4
    assert first.fraction_lost == (4 << 8) // 40
    # second interval: 40..79, 10 lost
    run(rx, [(1 + i * 0.02, packet(i, 160 * i)) for i in range(40, 80) if i % 4])
    second = rx.report_blocks(now=2.0)[0]
    assert second.packets_lost == 14
    assert second.fraction_lost == (10 << 8) // 40
    # third interval: nothing lost
    run(rx, [(2 + i * 0.02, packet(i, 160 * i)) for i in range(80, 90)])
    assert rx.report_blocks(now=3.0)[0].fraction_lost == 0


def test_sequence_wrap_counts_cycles() -> None:
    rx = RtpReceiver(clock_rate=8000)
    out = run(rx, [(i * 0.02, packet(65530 + i, 160 * i)) for i in range(20)])
    assert seqs(out) == [(65530 + i) & 0xFFFF for i in range(20)]
    src = rx.source
    assert src is not None
    assert src.cycles == 65536
    assert src.extended_max == 65536 + 13
    assert src.lost == 0
    assert rx.report_blocks(1.0)[0].highest_sequence == 65536 + 13


def test_interarrival_jitter_follows_a8() -> None:
    rng = random.Random(1)
    rx = RtpReceiver(clock_rate=8000, jitter_delay=0.2)
    delays = [rng.uniform(0, 0.03) for _ in range(500)]
    arrivals = sorted((i * 0.02 + d, packet(i, 160 * i)) for i, d in enumerate(delays))
    run(rx, arrivals)
    # the A.8 estimator, computed independently, in arrival order
    expected_j, prev = 0.0, None
    for now, data in arrivals:
        ts = RtpPacket.parse(data).timestamp
        transit = now * 8000 - ts
        if prev is not None:
            expected_j += (abs(transit - prev) - expected_j) / 16
        prev = transit
    src = rx.source
    assert src is not None
    assert src.jitter == pytest.approx(expected_j, rel=1e-9)
    # uniform 0..30 ms delay: mean |D| = 10 ms = 80 units
    assert 50 < src.jitter < 110


def test_timestamp_jump_does_not_pollute_jitter_or_order() -> None:
    rx = RtpReceiver(clock_rate=8000)
    arrivals = [(i * 0.02, packet(i, 160 * i)) for i in range(50)]
    arrivals += [(i * 0.02, packet(i, 160 * i + 80_000_000)) for i in range(50, 100)]
    out = run(rx, arrivals)
    assert seqs(out) == list(range(100))
    assert rx.source is not None and rx.source.jitter < 1


def test_ssrc_change_mid_call_resyncs() -> None:
    rx = RtpReceiver(clock_rate=8000, jitter_delay=1.0)
    out = []
    out += rx.receive(packet(100, 0, ssrc=1), 0.00)
    out += rx.receive(packet(102, 320, ssrc=1), 0.04)  # 101 missing, 102 held
    # the sender restarts with a new SSRC and unrelated sequence/timestamp
    out += rx.receive(packet(40000, 999, ssrc=2), 0.06)
    out += rx.receive(packet(40001, 1159, ssrc=2), 0.08)
    out += rx.receive(packet(101, 160, ssrc=1), 0.09)  # straggler of the old source
    out += rx.receive(packet(40002, 1319, ssrc=2), 0.10)
    assert [(p.ssrc, p.sequence_number) for p in out] == [
        (1, 100),
        (1, 102),
        (2, 40000),
        (2, 40001),
        (2, 40002),
    ]
    assert rx.counters.ssrc_changes == 1 and rx.counters.stale_ssrc == 1
    assert rx.source is not None and rx.source.ssrc == 2 and rx.source.lost == 0
    blocks = rx.report_blocks(0.2)
    assert {b.ssrc for b in blocks} == {1, 2}
    assert rx.report_blocks(0.3)[0].ssrc == 2 and len(rx.report_blocks(0.3)) == 1
    # much later, the first source comes back (call resumed after music-on-hold)
    assert seqs(rx.receive(packet(500, 0, ssrc=1), 5.0)) == [500]
    assert rx.counters.ssrc_changes == 2


def test_sequence_restart_on_same_ssrc_is_confirmed_by_second_packet() -> None:
    rx = RtpReceiver(clock_rate=8000)
    out = run(rx, [(i * 0.02, packet(10000 + i, 160 * i)) for i in range(10)])
    # one stray packet far away is held and then dropped
    out = rx.receive(packet(30000, 0), 0.21)
    assert out == []
    out = rx.receive(packet(10010, 1600), 0.22)
    assert seqs(out) == [10010]
    # a real restart: two sequential packets after the jump; both are kept
    assert rx.receive(packet(7, 50), 0.24) == []
    out = rx.receive(packet(8, 210), 0.26)
    assert seqs(out) == [7, 8]
    out += rx.receive(packet(9, 370), 0.28)
    assert seqs(out) == [7, 8, 9]
    assert rx.counters.sequence_restarts == 1
    src = rx.source
    assert src is not None and (src.base_seq, src.expected, src.received, src.lost) == (7, 3, 3, 0)


def test_duplicates_counted_by_a3_but_delivered_once() -> None:
    rx = RtpReceiver(clock_rate=8000)
    arrivals = []
    for i in range(20):
        arrivals.append((i * 0.02, packet(i, 160 * i)))
        if i % 5 == 0:
            arrivals.append((i * 0.02 + 0.001, packet(i, 160 * i)))
    out = run(rx, arrivals)
    assert seqs(out) == list(range(20))
    assert rx.buffer.duplicates == 4
    assert rx.source is not None and rx.source.lost == -4  # RFC 3550 A.3 allows negative


def test_invalid_datagrams_counted() -> None:
    rx = RtpReceiver(clock_rate=8000)
    assert rx.receive(b"\x00\x01", 0.0) == []
    assert rx.receive_rtcp(b"\x80", 0.0) == []
    assert rx.counters.invalid == 2


def test_receiver_report_lsr_dlsr_from_sender_report() -> None:
    rx = RtpReceiver(clock_rate=8000, ssrc=0x5151)
    run(rx, [(i * 0.02, packet(i, 160 * i)) for i in range(10)])
    ntp = ntp_timestamp(1_800_000_000.25)
    sr = RtcpSenderReport(ssrc=0xABC, ntp_timestamp=ntp, rtp_timestamp=1440)
    parsed = rx.receive_rtcp(serialise_compound([sr, RtcpSdes.cname_for(0xABC, "phone")]), 10.0)
    assert parsed[0] == sr
    data = rx.compound_report(11.5, cname="sipum")
    rr, sdes = parse_compound(data)
    assert isinstance(rr, RtcpReceiverReport) and isinstance(sdes, RtcpSdes)
    assert rr.ssrc == 0x5151 and sdes.chunks[0].cname == "sipum"
    (block,) = rr.reports
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == int(1.5 * 65536)


def test_bye_of_current_source_counted() -> None:
    from sipum_protocol.media.rtcp import RtcpBye

    rx = RtpReceiver(clock_rate=8000)
    rx.receive(packet(1, 0), 0.0)
    rx.receive_rtcp(bytes(RtcpBye([0xABC])), 0.1)
    rx.receive_rtcp(bytes(RtcpBye([0xDEF])), 0.1)
    assert rx.counters.byes == 1


def test_next_timer_drives_poll() -> None:
    rx = RtpReceiver(clock_rate=8000, jitter_delay=0.05)
    rx.receive(packet(1, 0), 0.0)
    assert rx.next_timer() is None
    rx.receive(packet(3, 320), 0.04)
    assert rx.next_timer() == pytest.approx(0.09)
    assert seqs(rx.poll(0.09)) == [3]
    assert rx.buffer.skipped == 1


def test_fast_path_is_equivalent_to_receive() -> None:
    """accept_run one packet at a time + receive on the packets it refuses gives the same released order and
    the same statistics as receive alone, on a lossy, reordered, duplicated stream with a
    sequence wrap and an SSRC change."""
    rng = random.Random(11)
    arrivals = []
    for i in range(3000):
        ssrc = 1 if i < 2000 else 2
        seq = (65000 + i) if ssrc == 1 else (30000 + i)
        if rng.random() < 0.05:
            continue
        t = i * 0.02 + rng.uniform(0, 0.04) * (rng.random() < 0.2)
        arrivals.append((t, packet(seq, 160 * i, ssrc=ssrc)))
        if rng.random() < 0.02:
            arrivals.append((t + 0.001, packet(seq, 160 * i, ssrc=ssrc)))
    arrivals.sort(key=lambda a: a[0])

    plain = RtpReceiver(clock_rate=8000)
    fast = RtpReceiver(clock_rate=8000)
    out_plain: list[tuple[int, int]] = []
    out_fast: list[tuple[int, int]] = []
    taken = 0
    for now, data in arrivals:
        out_plain += [
            (p.ssrc, p.sequence_number) for p in plain.poll(now) + plain.receive(data, now)
        ]
        out_fast += [(p.ssrc, p.sequence_number) for p in fast.poll(now)]
        head = RtpPacket.parse(data)
        if fast.accept_run(data, len(data), [now]) == 1:
            taken += 1
            out_fast.append((head.ssrc, head.sequence_number))
        else:
            out_fast += [(p.ssrc, p.sequence_number) for p in fast.receive(data, now)]
    out_plain += [(p.ssrc, p.sequence_number) for p in plain.flush()]
    out_fast += [(p.ssrc, p.sequence_number) for p in fast.flush()]
    assert taken > 1500
    assert out_fast == out_plain
    assert plain.source is not None and fast.source is not None
    for attr in ("received", "cycles", "max_seq", "base_seq", "jitter"):
        assert getattr(fast.source, attr) == getattr(plain.source, attr), attr
    assert fast.report_blocks(100.0) == plain.report_blocks(100.0)
    for attr in ("released", "late", "duplicates", "skipped"):
        assert getattr(fast.buffer, attr) == getattr(plain.buffer, attr), attr


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_batched_fast_path_is_equivalent_to_receive(seed: int) -> None:
    """accept_run over queued datagrams (and receive for each one it leaves) gives the same
    released order, RFC 3550 figures and buffer counters as receive alone — on a stream with
    loss, reordering, duplicates, a sequence wrap, a timestamp jump, a sequence restart and an
    SSRC change, drained in batches of random size as the endpoint drains its queue."""
    rng = random.Random(seed)
    arrivals: list[tuple[bytes, float]] = []
    for i in range(4000):
        ssrc = 1 if i < 2500 else 2
        seq = (65300 + i) if ssrc == 1 else (30000 + i)
        if 1500 <= i < 2500:
            seq += 20000  # the sender restarted its sequence numbers
        ts = 160 * i + (8000 * 30 if i >= 1000 else 0)  # a timestamp jump at 1000
        if rng.random() < 0.04:
            continue
        t = i * 0.02 + rng.uniform(0, 0.04) * (rng.random() < 0.2)
        arrivals.append((packet(seq, ts, ssrc=ssrc), t))
        if rng.random() < 0.02:
            arrivals.append((packet(seq, ts, ssrc=ssrc), t + 0.001))
    arrivals.sort(key=lambda a: a[1])

    plain = RtpReceiver(clock_rate=8000)
    fast = RtpReceiver(clock_rate=8000)
    out_plain: list[tuple[int, int]] = []
    out_fast: list[tuple[int, int]] = []
    taken = 0
    k = 0
    while k < len(arrivals):
        batch = arrivals[k : k + rng.randint(1, 40)]
        k += len(batch)
        first = batch[0][1]
        out_plain += [(p.ssrc, p.sequence_number) for p in plain.poll(first)]
        for data, now in batch:
            out_plain += [(p.ssrc, p.sequence_number) for p in plain.receive(data, now)]
        out_fast += [(p.ssrc, p.sequence_number) for p in fast.poll(first)]
        block = b"".join(data for data, _ in batch)
        times = [now for _, now in batch]
        i = 0
        while i < len(batch):
            j = fast.accept_run(block, len(batch[0][0]), times, i)
            for data, _ in batch[i:j]:
                head = RtpPacket.parse(data)
                out_fast.append((head.ssrc, head.sequence_number))
            taken += j - i
            if j < len(batch):
                data, now = batch[j]
                out_fast += [(p.ssrc, p.sequence_number) for p in fast.receive(data, now)]
            i = j + 1
    out_plain += [(p.ssrc, p.sequence_number) for p in plain.flush()]
    out_fast += [(p.ssrc, p.sequence_number) for p in fast.flush()]
    assert taken > 0.3 * len(arrivals)  # the rest waits behind gaps (4 % loss)
    assert out_fast == out_plain
    assert plain.counters == fast.counters
    assert plain.counters.sequence_restarts == 1 and plain.counters.ssrc_changes == 1
    assert plain.source is not None and fast.source is not None
    for attr in ("received", "cycles", "max_seq", "base_seq", "jitter", "transit"):
        assert getattr(fast.source, attr) == getattr(plain.source, attr), attr
    assert fast.report_blocks(100.0) == plain.report_blocks(100.0)
    for attr in ("released", "late", "duplicates", "skipped"):
        assert getattr(fast.buffer, attr) == getattr(plain.buffer, attr), attr
    assert plain.buffer.duplicates > 10 and plain.buffer.skipped > 10
