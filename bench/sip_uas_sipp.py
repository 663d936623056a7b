"""UAS benchmark: our SIP core answering ``sipp -sn uac`` vs sippy 2.5.0, in the same run.

For each UAS (ours: ``python -m sipum_testing.sip_uas``; the reference: a tiny UAS on sippy 2.5.0,
written below and run in a throwaway environment with ``uv run --no-project --with
sippy==2.5.0``) the call rate is stepped up; each step runs ``sipp -sn uac`` for a few seconds
(``-m rate*seconds``). The result per UAS is the highest rate at which every call succeeded
(zero failed, none left over, and sipp placed them at 95 % of the rate at least), with p50/p99
of INVITE->200 from sipp's ``-trace_rtt`` at that rate (sipp's clock ticks in ~4 ms steps);
also reported: the highest rate without any retransmission and the highest with p99 < 20 ms
(each must hold at every lower rate too). Both UASs answer at once with 200 (no 180: sippy sends 180 and 200 from different
threads and they can arrive reordered, which sipp counts as a failed call) carrying a constant
SDP answer, so both do the same application work and the SIP stacks are what is compared.
``--gc`` runs both with Python's default garbage collector and/or without automatic full
collections (see ``python -m sipum_testing.sip_uas --help``).

The UAS is pinned to CPU 0 and sipp to CPU 1 when ``taskset`` exists ("one core" each).
The machine is shared: compare the two UASs by the ratio measured in one run.

    uv run python bench/sip_uas_sipp.py [--seconds 5] [--rates 100,200,...] [--profile RATE]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIPPY_UAS = r"""
import sys
from sippy.CCEvents import CCEventConnect, CCEventTry
from sippy.Core.EventDispatcher import ED2
from sippy.MsgBody import MsgBody
from sippy.SipConf import SipConf
from sippy.SipLogger import SipLogger
from sippy.SipTransactionManager import SipTransactionManager
from sippy.Time.Timeout import Timeout
from sippy.UA import UA

ANSWER = ("v=0\r\no=sippy 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Answerer:
    def __init__(self, config):
        self.config = config

    def recv_request(self, req, sip_t):
        if req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        if req.getMethod() == "INVITE":
            return UA(self.config, self.on_event).recvRequest(req, sip_t)
        return (req.genResponse(501, "Not Implemented"), None, None)

    def on_event(self, event, ua):
        if isinstance(event, CCEventTry):
            # Answer once the UA has finished taking the INVITE (it is then in Trying).
            Timeout(self.answer, 0, 1, ua)

    def answer(self, ua):
        ua.recvEvent(CCEventConnect((200, "OK", MsgBody(ANSWER))))


if len(sys.argv) > 3 and sys.argv[3] == "no-full":
    import gc

    gc.freeze()
    gc.set_threshold(700, 10, 10**9)

config = {"_sip_address": sys.argv[1], "_sip_port": int(sys.argv[2]),
          "_sip_logger": SipLogger("sippy_uas")}
config["_sip_tm"] = SipTransactionManager(config, Answerer(config).recv_request)
print(f"listening UDP {sys.argv[1]}:{sys.argv[2]}", flush=True)
ED2.loop()
"""

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        return ["taskset", "-c", str(cpu)]
    return []


@dataclass
class Step:
    rate: int
    calls: int
    successful: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None
    retransmissions: int
    achieved: float
    """Calls per second sipp really placed (its cumulative call rate)."""

    @property
    def clean(self) -> bool:
        """Every call succeeded, and sipp really placed them at (95 % of) the rate: when the
        UAS answers slowly sipp's call limit throttles it, and the rate is not reached."""
        return (
            self.failed == 0 and self.successful == self.calls and self.achieved >= 0.95 * self.rate
        )

    @property
    def smooth(self) -> bool:
        """Clean and nothing retransmitted: every answer came within sipp's T1 (500 ms)."""
        return self.clean and self.retransmissions == 0

    @property
    def fast(self) -> bool:
        """Clean and p99 INVITE->200 under 20 ms (the target of the issue)."""
        return self.clean and self.p99_ms is not None and self.p99_ms < 20.0


def start_uas(
    kind: str, port: int, workdir: Path, profile: bool, gc_mode: str = "default"
) -> subprocess.Popen[str]:
    env = dict(os.environ, SIPLOG_LVL="ERR", PYTHONUNBUFFERED="1")
    if kind == "sipum":
        cmd = [sys.executable]
        if profile:
            cmd += ["-m", "cProfile", "-o", str(workdir / "sipum.prof")]
        cmd += ["-m", "sipum_testing.sip_uas", "--udp-port", str(port), "--no-ringing", "--uvloop"]
        cmd += ["--gc", gc_mode, "--static-answer"]
        if profile:
            cmd += ["--duration", "30"]
    else:
        script = workdir / "sippy_uas.py"
        script.write_text(SIPPY_UAS)
        cmd = [
            "uv",
            "run",
            "--no-project",
            "--quiet",
            "--with",
            "sippy==2.5.0",
            "python",
            str(script),
            "127.0.0.1",
            str(port),
            gc_mode,
        ]
    proc = subprocess.Popen(
        pin(0) + cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{kind} UAS exited before listening (rc={proc.poll()})")
        if line.startswith("listening UDP"):
            return proc
    proc.kill()
    raise RuntimeError(f"{kind} UAS did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(
            signal.SIGINT if "sipum_testing.sip_uas" in " ".join(proc.args) else signal.SIGTERM
        )  # type: ignore[arg-type]
        try:
            out, _ = proc.communicate(timeout=40)
            return out or ""
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_step(port: int, rate: int, seconds: float, workdir: Path) -> Step:
    calls = int(rate * seconds)
    stepdir = Path(tempfile.mkdtemp(prefix=f"r{rate}-", dir=workdir))
    stats = stepdir / "stats.csv"
    cmd = pin(1) + [
        "sipp",
        "-sn",
        "uac",
        f"127.0.0.1:{port}",
        "-nostdin",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(max(rate * 4, 100)),
        "-timeout",
        f"{int(seconds + 15)}s",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
        "-trace_rtt",
        "-rtt_freq",
        "50",
    ]
    subprocess.run(
        cmd, cwd=stepdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60
    )
    with stats.open(newline="") as f:
        last = list(csv.DictReader(f, delimiter=";"))[-1]
    rtts: list[float] = []
    for path in stepdir.glob("*_rtt.csv"):
        with path.open(newline="") as f:
            for row in csv.DictReader(f, delimiter=";"):
                value = row.get("response_time_ms") or row.get("response_time")
                if value:
                    rtts.append(float(value))
    return Step(
        rate=rate,
        calls=calls,
        successful=int(last["SuccessfulCall(C)"]),
        failed=int(last["FailedCall(C)"]),
        p50_ms=statistics.median(rtts) if rtts else None,
        p99_ms=percentile(rtts, 0.99) if rtts else None,
        retransmissions=int(last.get("Retransmissions(C)") or 0),
        achieved=float(last.get("CallRate(C)") or 0.0),
    )


def bench(kind: str, gc_mode: str, rates: list[int], seconds: float, workdir: Path) -> list[Step]:
    port = free_port()
    proc = start_uas(kind, port, workdir, profile=False, gc_mode=gc_mode)
    label = f"{kind}/{gc_mode}"
    steps: list[Step] = []
    try:
        for rate in rates:
            step = run_step(port, rate, seconds, workdir)
            steps.append(step)
            p50 = f"{step.p50_ms:.2f}" if step.p50_ms is not None else "-"
            p99 = f"{step.p99_ms:.2f}" if step.p99_ms is not None else "-"
            print(
                f"  {label:15} {rate:5d} calls/s ({step.achieved:6.1f} placed): "
                f"{step.successful}/{step.calls} ok, "
                f"{step.failed} failed, {step.retransmissions} retransmissions, "
                f"INVITE->200 p50 {p50} ms p99 {p99} ms",
                flush=True,
            )
            if not step.clean:
                break
            time.sleep(1.0)  # let the previous step's transactions drain
    finally:
        stop(proc)
    return steps


def best(steps: list[Step], criterion: str = "clean") -> Step | None:
    """The highest rate meeting ``criterion`` (``clean``, ``smooth`` or ``fast``) at which
    every lower rate met it too."""
    found = None
    for step in steps:
        if not getattr(step, criterion):
            break
        found = step
    return found


def profile_at(rate: int, seconds: float, workdir: Path, gc_mode: str) -> None:
    """cProfile our UAS at one rate; print the hottest functions and the time per layer."""
    import pstats

    port = free_port()
    proc = start_uas("sipum", port, workdir, profile=True, gc_mode=gc_mode)
    try:
        step = run_step(port, rate, seconds, workdir)
        print(f"profiled run at {rate} calls/s (gc {gc_mode}): {step.successful}/{step.calls} ok")
    finally:
        stop(proc)
    stats = pstats.Stats(str(workdir / "sipum.prof"))
    stats.sort_stats("tottime").print_stats(15)
    groups = {
        "messages (parse/serialise: message, headers, uri)": (
            "sip/message.py",
            "sip/headers.py",
            "sip/uri.py",
        ),
        "transaction layer": ("sip/transaction/",),
        "user agent + dialog": ("sip/ua/", "sip/dialog.py"),
        "transports": ("sip/transport/",),
        "test UAS application": ("sip/testuas.py", "sip/sdp.py"),
    }
    totals = dict.fromkeys(groups, 0.0)
    other = 0.0
    busy = 0.0
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if name in ("run", "select", "poll") and "asyncio" in filename or "uvloop" in filename:
            if name == "run":
                continue  # the event loop waiting for input
        busy += tottime
        for group, needles in groups.items():
            if any(n in filename for n in needles):
                totals[group] += tottime
                break
        else:
            other += tottime
    print("CPU time by part (profiled, so inflated; shares are what matter):")
    for group, total in totals.items():
        print(f"  {group:52} {total:6.2f} s  {100 * total / busy:5.1f} %")
    print(
        f"  {'asyncio/uvloop, sockets, GC and the rest':52} {other:6.2f} s  {100 * other / busy:5.1f} %"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate step")
    parser.add_argument(
        "--rates", default="100,200,300,400,500,600,800,1000,1200,1500,2000", help="steps"
    )
    parser.add_argument("--only", choices=["sipum", "sippy"], default=None)
    parser.add_argument("--profile", type=int, default=None, help="cProfile our UAS at RATE")
    parser.add_argument(
        "--gc",
        choices=["default", "no-full", "both"],
        default="both",
        help="garbage collector policy of both UASs (no-full: no automatic full collections)",
    )
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    gc_modes = ["default", "no-full"] if args.gc == "both" else [args.gc]
    with tempfile.TemporaryDirectory(prefix="sip-uas-bench-") as tmp:
        workdir = Path(tmp)
        if args.profile:
            profile_at(args.profile, args.seconds, workdir, gc_modes[-1])
            return 0
        print(
            f"sipp -sn uac, {args.seconds:g} s per step, UAS on CPU 0, sipp on CPU 1 "
            f"(load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)"
        )
        series = [(kind, mode) for mode in gc_modes for kind in ("sipum", "sippy")]
        results: dict[tuple[str, str], list[Step]] = {}
        for kind, mode in series:
            if args.only and kind != args.only:
                continue
            print(f"{kind}, gc {mode}:", flush=True)
            results[(kind, mode)] = bench(kind, mode, rates, args.seconds, workdir)
        print()
        for (kind, mode), steps in results.items():
            clean, smooth, fast = best(steps), best(steps, "smooth"), best(steps, "fast")
            line = f"{kind:6} gc {mode:8}: "
            if clean is None:
                line += "no rate without failed calls"
            else:
                line += (
                    f"{clean.rate} calls/s with 0 failed (p50 {clean.p50_ms:.1f} ms, "
                    f"p99 {clean.p99_ms:.1f} ms)"
                )
            line += f"; without retransmissions: {smooth.rate if smooth else 'none'}"
            line += f"; with p99 < 20 ms: {fast.rate if fast else 'none'}"
            print(line)
        for mode in gc_modes:
            ours, ref = results.get(("sipum", mode)), results.get(("sippy", mode))
            if not ours or not ref:
                continue
            for criterion, what in (
                ("clean", "0 failed"),
                ("smooth", "no retransmission"),
                ("fast", "p99 < 20 ms"),
            ):
                a, b = best(ours, criterion), best(ref, criterion)
                if a and b:
                    print(f"rate ratio sipum/sippy (gc {mode}, {what}): {a.rate / b.rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
