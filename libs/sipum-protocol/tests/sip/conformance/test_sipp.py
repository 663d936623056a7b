"""Conformance against sipp over loopback: the real stack (transports, transaction layer, user
agent) in this process, sipp as a subprocess on free ports.

Each run is bounded (``-m N``, ``-timeout``, and an outer asyncio timeout) and asserts sipp's
exit code 0 plus its call counters from ``-trace_stat`` (and, where it matters, the per-message
counts from ``-trace_counts``), and what our side saw.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipum_protocol.sip.transaction import Peer, TimerConfig
from sipum_protocol.sip.transport.config import EndpointConfig
from sipum_protocol.sip.ua import CallAnswered, CallEnded, UserAgentEvent
from sipum_protocol.sip.ua.aio import UserAgentEndpoint
from sipum_testing.ports import wait_until_udp_bound
from sipum_testing.sip_uas import TestUas

SCENARIOS = Path(__file__).parent / "scenarios"

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (sipp binds both with -p)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


@dataclass
class SippResult:
    returncode: int
    output: str
    stats: dict[str, str]
    counts: dict[str, str]

    @property
    def successful(self) -> int:
        return int(self.stats["SuccessfulCall(C)"])

    @property
    def failed(self) -> int:
        return int(self.stats["FailedCall(C)"])


def _last_row(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows[-1] if rows else {}


async def run_sipp(args: list[str], workdir: Path, *, limit: float = 40.0) -> SippResult:
    stats = workdir / "stats.csv"
    cmd = [
        "sipp",
        *args,
        "-nostdin",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-max_socket",
        "1000",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
        "-trace_counts",
        "-trace_err",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return _collect(workdir, proc.returncode, out.decode(errors="replace"))


def _collect(workdir: Path, returncode: int | None, output: str) -> SippResult:
    stats = workdir / "stats.csv"
    counts_files = sorted(workdir.glob("*_counts.csv"))
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    return SippResult(
        returncode=returncode if returncode is not None else -1,
        output=output + errors,
        stats=_last_row(stats) if stats.exists() else {},
        counts=_last_row(counts_files[-1]) if counts_files else {},
    )


def uas_config(*, t1: float = 0.5, tcp: bool = False) -> EndpointConfig:
    return EndpointConfig(
        host="127.0.0.1",
        udp_port=0,
        tcp_port=0 if tcp else None,
        timers=TimerConfig(t1=t1, t2=max(t1, 4.0)),
    )


def target(uas: TestUas, transport: str = "UDP") -> str:
    host, port = uas.endpoint.addresses[transport]
    return f"{host}:{port}"


def assert_ok(result: SippResult, calls: int) -> None:
    assert result.returncode == 0, result.output[-3000:]
    assert result.successful == calls, result.output[-3000:]
    assert result.failed == 0


# ---------------------------------------------------------------------- built-in scenarios


async def test_builtin_uac_udp(tmp_path: Path) -> None:
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sn", "uac", target(uas), "-m", "30", "-r", "30", "-timeout", "20s"], tmp_path
        )
    assert_ok(result, 30)
    assert uas.stats.incoming == 30 and uas.stats.confirmed == 30
    assert uas.stats.ended["remote-bye"] == 30


@pytest.mark.parametrize("mode", ["t1", "tn"])
async def test_builtin_uac_tcp(tmp_path: Path, mode: str) -> None:
    async with TestUas(uas_config(tcp=True)) as uas:
        result = await run_sipp(
            [
                "-sn",
                "uac",
                target(uas, "TCP"),
                "-t",
                mode,
                "-m",
                "20",
                "-r",
                "20",
                "-timeout",
                "20s",
            ],
            tmp_path,
        )
    assert_ok(result, 20)
    assert uas.stats.confirmed == 20 and uas.stats.ended["remote-bye"] == 20
    # Over a reliable transport nothing is retransmitted.
    assert int(result.counts["0_INVITE_Retrans"]) == 0


async def test_loss_10_percent_every_call_completes(tmp_path: Path) -> None:
    """``-lost 10``: sipp drops 10 % of what it sends and receives; every call must still
    complete, on both sides. The scenario is the built-in uac with transaction matching (see
    its comment: the built-in one can count a call whose BYE never arrived)."""
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "uac_txn.xml"), target(uas), "-lost", "10"]
            + ["-m", "50", "-r", "25", "-timeout", "35s"],
            tmp_path,
            limit=45,
        )
    assert_ok(result, 50)
    # The loss really happened and was repaired by retransmissions on both sides.
    lost = sum(int(v) for k, v in result.counts.items() if k.endswith("_Lost"))
    retrans = sum(int(v) for k, v in result.counts.items() if k.endswith("_Retrans"))
    assert lost > 0 and retrans > 0, result.counts
    assert uas.stats.incoming == 50
    assert uas.stats.ended["remote-bye"] == 50, dict(uas.stats.ended)


async def test_builtin_uas_answers_our_uac(tmp_path: Path) -> None:
    """sipp's built-in UAS against a UAC on our core: INVITE, ACK for the 2xx, BYE."""
    sipp_port = free_port()
    calls = 10
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        "-sn",
        "uas",
        "-nostdin",
        "-i",
        "127.0.0.1",
        "-p",
        str(sipp_port),
        "-m",
        str(calls),
        "-timeout",
        "20s",
        "-trace_stat",
        "-stf",
        str(tmp_path / "uas.csv"),
        "-fd",
        "1",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    answered: list[object] = []
    ended: list[CallEnded] = []

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, CallAnswered):
            answered.append(event.call)
            event.call.hangup(ep.now())
        elif isinstance(event, CallEnded):
            ended.append(event)

    sdp = (
        b"v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    try:
        await wait_until_udp_bound(sipp_port)
        async with UserAgentEndpoint(uas_config(), on_event=on_event, user="uac") as ep:
            peer = Peer("UDP", "127.0.0.1", sipp_port)
            for _ in range(calls):
                ep.invite(f"sip:service@127.0.0.1:{sipp_port}", peer, sdp=sdp)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stats = _last_row(tmp_path / "uas.csv")
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert int(stats["SuccessfulCall(C)"]) == calls
    assert len(answered) == calls
    assert [e.reason for e in ended] == ["local-bye"] * calls


# ---------------------------------------------------------------------- our scenarios


async def test_cancel_while_ringing(tmp_path: Path) -> None:
    async with TestUas(uas_config(), ring_delay=10.0) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "cancel_ringing.xml"), target(uas), "-m", "5", "-r", "10"]
            + ["-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 5)
    assert int(result.counts["5_487_Recv"]) == 5
    assert int(result.counts["5_487_Retrans"]) == 0  # the ACK stopped timer G
    assert uas.stats.cancelled == 5 and uas.stats.answered == 0
    assert uas.stats.ended["cancelled"] == 5


async def test_bye_retransmitted_gets_same_200(tmp_path: Path) -> None:
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "bye_retransmitted.xml"), target(uas), "-nr"]
            + ["-m", "5", "-r", "10", "-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 5)
    assert uas.stats.ended["remote-bye"] == 5  # the retransmitted BYE did not end anything new


async def test_invite_retransmitted_while_ringing(tmp_path: Path) -> None:
    async with TestUas(uas_config(), ring_delay=1.0) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "invite_retrans_ringing.xml"), target(uas), "-nr"]
            + ["-m", "3", "-r", "10", "-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 3)
    assert uas.stats.incoming == 3  # no second call for the retransmission
    assert uas.stats.ended["remote-bye"] == 3


async def test_invite_retransmitted_after_200(tmp_path: Path) -> None:
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "invite_retrans_answered.xml"), target(uas), "-nr"]
            + ["-m", "3", "-r", "10", "-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 3)
    assert uas.stats.incoming == 3
    assert uas.stats.ended["remote-bye"] == 3


async def test_2xx_never_acked_is_retransmitted_then_bye(tmp_path: Path) -> None:
    # T1 = 50 ms so that 64*T1 = 3.2 s: retransmissions at 0.05, 0.15, 0.35, 0.75, 1.55, 3.15.
    async with TestUas(uas_config(t1=0.05)) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "no_ack.xml"), target(uas), "-m", "2", "-r", "10"]
            + ["-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 2)
    # sipp saw the repeated 200s (counted as retransmissions of the 200 it expected) and
    # then our BYE (which it answered).
    retrans = int(result.counts["3_200_Retrans"])
    assert retrans >= 2 * 5, result.counts
    assert int(result.counts["4_BYE_Recv"]) == 2
    assert uas.stats.ended["no-ack"] == 2 and uas.stats.confirmed == 0


async def test_reinvite_hold_update_and_options_in_dialog(tmp_path: Path) -> None:
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "reinvite_hold.xml"), target(uas), "-m", "3", "-r", "10"]
            + ["-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 3)  # check_it: the hold answer was recvonly, the resume sendrecv
    assert uas.stats.session_modified == 2 * 3
    assert uas.stats.ended["remote-bye"] == 3


async def test_error_responses(tmp_path: Path) -> None:
    async with TestUas(uas_config()) as uas:
        result = await run_sipp(
            ["-sf", str(SCENARIOS / "error_responses.xml"), target(uas), "-m", "3", "-r", "10"]
            + ["-timeout", "20s"],
            tmp_path,
        )
    assert_ok(result, 3)  # 405 with Allow, 481, 420 with Unsupported: foo-bar
    assert uas.stats.incoming == 0  # the INVITE with Require: foo-bar never became a call
