"""The whole system under call load: sipp callers through Kamailio at stepped rates.

    uv run python bench/system_calls.py [--rates 2,5,10,20] [--step-seconds 5] [--recorders 2]
        [--speech 3] [--mailboxes 40] [--json]

Starts the whole system as processes (``scratch_system``: Kamailio with the users from
PostgreSQL, moto_server as S3, an aiosmtpd SMTP server, the services, ``--recorders``
media-recorder replicas) on a fresh database, NATS namespace and bucket, removed at the end.
Signs up ``--mailboxes`` mailboxes (ring timeout 0: the forked call is answered at once).

Each step is one sipp process (``bench/scenarios/system_call.xml``) that starts ``rate`` calls/s
for ``--step-seconds`` seconds to the mailboxes in turn; every call waits for greeting and beep,
sends ``--speech`` seconds of real RTP (sipp ``play_pcap_audio`` of a G.711 A-law capture of
speech-like audio) and hangs up. After the step the bench waits (≤ 60 s) until every call's
message was stored (``message.created`` seen by an independent NATS subscriber) and e-mailed
(our SMTP server answered 250 to the notifier's DATA), then reports per step:

* calls placed by sipp, calls that sipp saw fail, messages stored, messages e-mailed, lost
  (placed − e-mailed within the step's wait), stored later (of those, stored by the end of the
  run: late, not lost), doubled (a second row or mail for one call), and how many messages are
  more than 0.25 s shorter than the speech sent (sipp starts speaking after a fixed wait, it
  cannot hear the beep: under load a late beep cuts the start of the speech);
* BYE → stored and BYE → e-mailed p50/p99 (BYE time: sipp's log line as it sends the BYE;
  everything on this host, one clock);
* CPU per service over the step — from sipp's start until the last message was mailed —
  (utime+stime from ``/proc/<pid>/stat`` of each process and, for Kamailio, its children;
  moto_server as the S3 store; sipp), in % of one core, and the whole host's busy CPU
  (``/proc/stat``: the other users of a shared machine show up there; PostgreSQL and NATS
  are shared servers and not counted per process).

Stepping stops after the first step that lost a message. The last line names the highest rate
with 0 lost. Needs PostgreSQL (127.0.0.1:5432, trust) and NATS with JetStream
(127.0.0.1:4222), like the tests (``SIPUM_TEST_POSTGRES_URL`` / ``SIPUM_TEST_NATS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from firstcall.audio import known_audio  # noqa: E402
from firstcall.speech_pcap import write_alaw_pcap  # noqa: E402
from firstcall.system import FirstCallSystem, free_udp_port  # noqa: E402
from firstcall.watch import EventWatch  # noqa: E402
from scratch_system import percentile, scratch_system, sign_up_mailboxes  # noqa: E402
from sipum_testing.ports import free_port_range  # noqa: E402

SCENARIO = REPO / "bench" / "scenarios" / "system_call.xml"
GREETING_MS = 8000  # default greeting with the name, then the beep: about 6.5 s
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RTP_PORTS_PER_RECORDER = 1000  # 500 sessions (RTP + RTCP)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def process_groups(system: FirstCallSystem) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for key, service in system.services.items():
        name = "media-recorder (all)" if key.startswith("media-recorder") else key
        groups.setdefault(name, []).append(service.proc.pid)
    kamailio = system.kamailio.process.pid
    groups["kamailio"] = [kamailio, *children(kamailio)]
    for pid in children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"moto.server" in cmdline:
            groups["moto_server (S3)"] = [pid]
    return groups


def host_busy_seconds() -> float:
    """CPU seconds every process of the host spent (all CPUs; ``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class Step:
    rate: float
    placed: int
    failed: int = 0
    stored: int = 0
    emailed: int = 0
    doubled: int = 0
    bye_to_stored: list[float] = field(default_factory=list)
    bye_to_emailed: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    sipp_exit: int = 0
    durations: list[float] = field(default_factory=list)
    call_ids: set[str] = field(default_factory=set)
    stored_late: int = 0
    """Stored after the step's 60 s wait, by the end of the run (late, not lost)."""

    @property
    def lost(self) -> int:
        return self.placed - self.emailed


def parse_byes(log: Path) -> dict[str, float]:
    """``bye <Call-ID> <YYYY-MM-DD>\\t<HH:MM:SS.ffffff>`` lines (sipp's local time)."""
    byes = {}
    if not log.exists():
        return byes
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "bye":
            stamp = datetime.strptime(f"{parts[2]} {parts[3]}", "%Y-%m-%d %H:%M:%S.%f")
            byes[parts[1]] = stamp.timestamp()
    return byes


async def run_step(
    system: FirstCallSystem,
    watch: EventWatch,
    work: Path,
    rate: float,
    args: argparse.Namespace,
    pcap: Path,
    users: list[str],
    mails_before: int,
) -> Step:
    count = max(1, round(rate * args.step_seconds))
    step_dir = work / f"rate-{rate:g}"
    step_dir.mkdir()
    inf = step_dir / "mailboxes.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{u}\n" for u in users))
    scenario = step_dir / SCENARIO.name  # sipp takes no keys in attributes: fill them in here
    scenario.write_text(
        SCENARIO.read_text()
        .replace("[greeting_ms]", str(GREETING_MS))
        .replace("[speech_ms]", str(int(args.speech * 1000) + 200))
        .replace("[pcap]", str(pcap))
    )
    argv = [
        "sipp", f"{system.proxy[0]}:{system.proxy[1]}",
        "-sf", str(scenario), "-inf", str(inf), "-key", "domain", system.domain,
        "-r", f"{rate:g}", "-m", str(count), "-l", str(count),
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_port_range(4)[0]),
        "-nostdin", "-trace_logs", "-trace_stat", "-fd", "1",
        "-timeout", f"{int(args.step_seconds + GREETING_MS / 1000 + args.speech + 60)}s",
        "-max_recv_loops", "1000",
    ]  # fmt: skip
    groups = process_groups(system)
    before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
    host_before = host_busy_seconds()
    started = time.monotonic()
    sipp = await asyncio.create_subprocess_exec(
        *argv,
        cwd=step_dir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(step_dir / "sipp.err").open("wb"),
    )
    sipp_cpu = 0.0
    while sipp.returncode is None:
        sipp_cpu = max(sipp_cpu, cpu_seconds(sipp.pid))
        try:
            await asyncio.wait_for(sipp.wait(), 0.5)
        except TimeoutError:
            pass
    step = Step(rate, count, sipp_exit=sipp.returncode)
    byes = parse_byes(next(iter(step_dir.glob("*_logs.log")), step_dir / "none"))
    step.failed = count - len(byes)
    step.call_ids = set(byes)
    if sipp.returncode != 0:
        errors = b"".join(p.read_bytes() for p in step_dir.glob("*err*"))
        print(f"sipp exited {sipp.returncode}: {errors[-1500:].decode(errors='replace')}")
    # every call's message stored and e-mailed, or 60 s
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        created = [e for e in watch.of("message.created") if e.data.get("call_id") in byes]
        mails = system.smtp.mails[mails_before:]
        if len(created) >= count and len(mails) >= count:
            break
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    after = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
    step.cpu = {name: 100 * (after[name] - before[name]) / elapsed for name in groups}
    step.cpu["sipp (callers)"] = 100 * sipp_cpu / elapsed
    step.cpu["whole host"] = 100 * (host_busy_seconds() - host_before) / elapsed
    created = [e for e in watch.of("message.created") if e.data.get("call_id") in byes]
    by_message = {int(e.data["message_id"]): e for e in created}
    step.stored = len({e.data["call_id"] for e in created})
    mails = system.smtp.mails[mails_before:]
    mail_ids = [int(str(m.message["X-Sipum-Message-Id"])) for m in mails]
    mailed = {i: m.accepted_at for i, m in zip(mail_ids, mails, strict=True) if i in by_message}
    step.emailed = len(mailed)
    step.doubled = (len(created) - step.stored) + (len(mail_ids) - len(set(mail_ids)))
    step.durations = sorted(float(e.data["duration_s"]) for e in created)
    for message_id, event in by_message.items():
        bye = byes[event.data["call_id"]]
        step.bye_to_stored.append(event.at - bye)
        if message_id in mailed:
            step.bye_to_emailed.append(mailed[message_id] - bye)
    return step


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}" if values else "-"


def report(steps: list[Step], args: argparse.Namespace) -> None:
    print(
        f"\n{args.recorders} media-recorder(s), {args.speech:g} s of speech per call, "
        f"greeting wait {GREETING_MS / 1000:g} s, {args.step_seconds:g} s of arrivals per step, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(
        "| calls/s | placed | failed (sipp) | stored | e-mailed | lost | stored later | doubled "
        "| BYE→stored p50/p99 ms | BYE→e-mailed p50/p99 ms | shorter than spoken | shortest s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in steps:
        print(
            f"| {s.rate:g} | {s.placed} | {s.failed} | {s.stored} | {s.emailed} | {s.lost} "
            f"| {s.stored_late} | {s.doubled} | {ms(s.bye_to_stored, 0.5)} / {ms(s.bye_to_stored, 0.99)} "
            f"| {ms(s.bye_to_emailed, 0.5)} / {ms(s.bye_to_emailed, 0.99)} "
            f"| {sum(1 for d in s.durations if d < args.speech - 0.25)} "
            f"| {min(s.durations, default=0):.2f} |"
        )
    names = list(steps[0].cpu)
    print("\nCPU per service over each step, % of one core:\n")
    print("| calls/s | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for s in steps:
        print(f"| {s.rate:g} | " + " | ".join(f"{s.cpu[n]:.0f}" for n in names) + " |")
    clean = [s.rate for s in steps if s.lost == 0 and s.doubled == 0 and s.failed == 0]
    print(f"\nhighest rate with 0 lost: {max(clean):g} calls/s" if clean else "\nevery step lost")


async def run(system: FirstCallSystem, args: argparse.Namespace, work: Path) -> list[Step]:
    users = [f"bench{i}" for i in range(args.mailboxes)]
    await sign_up_mailboxes(system, users)
    pcap = work / "speech.pcap"
    write_alaw_pcap(known_audio(args.speech), pcap)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    steps: list[Step] = []
    try:
        for rate in args.rates:
            step = await run_step(
                system, watch, work, rate, args, pcap, users, len(system.smtp.mails)
            )
            steps.append(step)
            print(
                f"rate {rate:g}: placed {step.placed}, failed {step.failed}, stored "
                f"{step.stored}, e-mailed {step.emailed}, sipp exit {step.sipp_exit}, "
                f"durations {step.durations[:1]}..{step.durations[-1:]} s",
                flush=True,
            )
            if step.lost or step.failed:
                break
        # what was not stored within a step's wait: late or lost? (≤ 60 s more)
        deadline = time.monotonic() + 60
        while any(s.stored < s.placed for s in steps) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            for s in steps:
                seen = {e.data.get("call_id") for e in watch.of("message.created")}
                s.stored_late = len(s.call_ids & seen) - s.stored
            if all(s.stored + s.stored_late >= s.placed for s in steps):
                break
    finally:
        await watch.close()
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", type=lambda v: [float(x) for x in v.split(",")], default=[2, 5, 10, 20]
    )
    parser.add_argument("--step-seconds", type=float, default=5.0, help="arrivals per step")
    parser.add_argument("--recorders", type=int, default=2)
    parser.add_argument("--speech", type=float, default=3.0, help="seconds of RTP per call")
    parser.add_argument("--mailboxes", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    args = parser.parse_args()

    with (
        scratch_system(recorders=0) as system,
        tempfile.TemporaryDirectory(prefix="sipum-bench-") as tmp,
    ):
        for index in range(1, args.recorders + 1):  # wide RTP port ranges
            first, last = free_port_range(RTP_PORTS_PER_RECORDER)
            system.start_service(
                "media-recorder",
                key=f"media-recorder-{index}",
                SIPUM_RTP_HOST="127.0.0.1",
                SIPUM_RTP_ADVERTISE_ADDRESS="127.0.0.1",
                SIPUM_RTP_PORT_MIN=str(first),
                SIPUM_RTP_PORT_MAX=str(last),
                SIPUM_RECORDER_ID=f"bench-recorder-{index}",
            ).wait_for_log("service started", timeout=60)
        steps = asyncio.run(run(system, args, Path(tmp)))

    report(steps, args)
    if args.json:
        print(json.dumps([{**s.__dict__, "call_ids": len(s.call_ids)} for s in steps]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
