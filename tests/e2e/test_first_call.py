"""The first call, end to end (issue 5): Bob calls Alice, nobody answers, sipum takes the
message, Alice gets an e-mail and hears the message by web, RTSP and SIP.

Everything is real and a separate process: Kamailio (registrar with digest auth from our
PostgreSQL, parallel forking), the five services, moto_server as S3, an aiosmtpd SMTP server,
sipp as Alice's phone, ffmpeg and GStreamer as players. The caller is a SIP user agent of our
SIP core with an RTP peer that sends 5 s of known audio (a sipp caller with pcap playback
cannot wait for the greeting and the beep before it speaks; ours listens for the beep).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sipum_testing.browser import chromium

from .firstcall.audio import RATE, known_audio, match, through_ulaw, wav_pcm
from .firstcall.fixtures import first_call_system  # noqa: F401 - the fixture
from .firstcall.phone import (
    Caller,
    RtpPeer,
    SippProcess,
    contains_tone,
    free_udp_port,
    register_phone,
    run_sipp,
    sipp_argv,
    start_sipp,
    wait_event,
)
from .firstcall.system import FirstCallSystem
from .firstcall.watch import EventWatch, set_ring_timeout

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
async def watch(first_call_system: FirstCallSystem) -> AsyncIterator[EventWatch]:  # noqa: F811
    """Every event of the system, as a plain NATS subscriber sees it."""
    backends = first_call_system.backends
    watcher = await EventWatch(backends.nats_url, backends.events_prefix).start()
    try:
        yield watcher
    finally:
        await watcher.close()


@pytest.fixture
def phones() -> Iterator[list[SippProcess]]:
    """sipp phones of a test, stopped by PID at its end."""
    started: list[SippProcess] = []
    yield started
    for phone in started:
        phone.stop()


@contextlib.contextmanager
def explained(system: FirstCallSystem) -> Iterator[None]:
    """A failed assertion carries the last log lines of every process."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.diagnostics()}") from exc
    except ExceptionGroup as group:  # players run in a task group
        failures = "\n".join(f"{type(e).__name__}: {e}" for e in group.exceptions)
        raise AssertionError(f"{failures}\n{system.diagnostics()}") from group


MESSAGE_SECONDS = 5.0
RING_SECONDS = 2
PIN = "2468"
BEEP_HZ = 1000.0


async def sign_up(http: httpx.AsyncClient, username: str, password: str) -> str:
    """Create the mailbox through the REST API and log in; returns a bearer token."""
    response = await http.post(
        "/api/v1/signup",
        json={
            "username": username,
            "password": password,
            "email": f"{username}@mail.test",
            "pin": PIN,
            "display_name": username.capitalize(),
        },
    )
    assert response.status_code == 201, response.text
    response = await http.post("/api/v1/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def wait_registered(system: FirstCallSystem, username: str, limit: float = 15.0) -> None:
    """The registrar-agent registered the new user's voicemail contact with Kamailio."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    agent = f"127.0.0.1:{system.agent_sip_port}"
    while loop.time() < deadline:
        contacts = await asyncio.to_thread(system.kamailio.lookup, username)
        if any(agent in c.address for c in contacts):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the registrar-agent did not register {username} within {limit} s")


async def run_player(*argv: str, limit: float = 40.0) -> tuple[int, str]:
    """Run a player to its end (bounded); killed by PID if cancelled or too slow."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        raise AssertionError(f"{argv[0]} did not finish within {limit} s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")[-3000:]


async def ffmpeg_fetch(url: str, out: Path, *, transport: str | None = None) -> np.ndarray:
    """Decode *url* (RTSP or HTTP) to 8 kHz mono PCM with ffmpeg."""
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error"]
    if transport is not None:
        argv += ["-rtsp_transport", transport]
    argv += ["-i", url, "-f", "s16le", "-ar", "8000", "-ac", "1", "-y", str(out)]
    code, log = await run_player(*argv)
    assert code == 0, f"ffmpeg {transport or ''} failed: {log}"
    return np.frombuffer(await asyncio.to_thread(out.read_bytes), dtype="<i2")


async def gstreamer_fetch(url: str, out: Path) -> np.ndarray:
    code, log = await run_player(
        "gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "latency=100",
        "!", "rtppcmudepay", "!", "mulawdec", "!", "audioconvert", "!", "audioresample",
        "!", "audio/x-raw,format=S16LE,rate=8000,channels=1",
        "!", "filesink", f"location={out}",
    )  # fmt: skip
    # gst-launch exits 0 only after EOS: the pipeline played the stream to its end.
    assert code == 0, f"gst-launch failed: {log}"
    return np.frombuffer(await asyncio.to_thread(out.read_bytes), dtype="<i2")


async def sip_retrieve(
    system: FirstCallSystem, uri: str, reference: np.ndarray
) -> tuple[float, str | None]:
    """Call the retrieval URI from the e-mail, type the PIN as RFC 4733 digits, listen to the
    message, end with ``#``. Returns (correlation of what was heard, how the call ended)."""
    host, _, port = uri.split("@", 1)[1].partition(":")
    rtp = await RtpPeer().open()
    try:
        async with Caller(domain=system.domain) as caller:
            call = caller.invite(uri, (host, int(port or 5060)), rtp.offer())
            await wait_event(call.answered, 10, "answer of the retrieval call", caller)
            assert call.call.remote_sdp is not None
            rtp.use_answer(call.call.remote_sdp)
            await rtp.wait_packets(5, limit=10)  # "please enter your PIN" has begun
            await rtp.send_digits(PIN + "#")
            after_pin = len(rtp.received)
            # The message (5 s), then the menu prompt, then silence while it waits for a digit.
            await rtp.wait_quiet(quiet=0.6, after=after_pin + 240, limit=30)
            heard = rtp.audio(after_pin)
            await rtp.send_digits("#")  # end: "goodbye", then the system hangs up
            await wait_event(call.ended, 15, "the end of the retrieval call", caller)
            return match(reference, heard), call.end_reason
    finally:
        rtp.close()


async def test_unanswered_call_is_recorded_mailed_and_played_by_web_rtsp_gstreamer_and_sip(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    phones: list[SippProcess],
    tmp_path: Path,
) -> None:
    system = first_call_system
    domain = system.domain
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "alice", "alice-password-1")
            auth = {"Authorization": f"Bearer {token}"}
            await set_ring_timeout(system.backends.database_url, "alice", RING_SECONDS)
            await wait_registered(system, "alice")

            # Alice's phone: registers with digest auth, rings, never answers.
            phone_port = free_udp_port()
            phone = start_sipp(
                sipp_argv("phone_ring", None, port=phone_port, timeout=60),
                cwd=tmp_path,
                port=phone_port,
            )
            phones.append(phone)
            await asyncio.to_thread(
                register_phone,
                system.proxy,
                user="alice",
                password="alice-password-1",
                domain=domain,
                contact_port=phone_port,
                cwd=tmp_path,
            )
            contacts = await asyncio.to_thread(system.kamailio.lookup, "alice")
            assert len(contacts) == 2, contacts  # the phone and sipum's voicemail

            # Bob calls alice@domain through Kamailio; both ring, sipum answers after 2 s.
            reference = known_audio(MESSAGE_SECONDS)
            rtp = await RtpPeer().open()
            try:
                async with Caller(domain=domain) as caller:
                    invited_at = time.monotonic()
                    call = caller.invite(f"sip:alice@{domain}", system.proxy, rtp.offer())
                    await wait_event(call.answered, 20, "sipum answering", caller)
                    rang = time.monotonic() - invited_at
                    assert 180 in call.progress
                    assert RING_SECONDS - 0.2 <= rang < RING_SECONDS + 3, rang
                    assert call.call.remote_sdp is not None
                    rtp.use_answer(call.call.remote_sdp)
                    # Greeting, beep, then the recorder listens (sends nothing).
                    heard = await rtp.wait_quiet(quiet=0.3, after=25, limit=30)
                    tail = rtp.audio(max(0, heard - 15))  # the last 300 ms
                    assert contains_tone(tail, BEEP_HZ), "the greeting did not end with the beep"
                    await rtp.send_audio(reference)
                    call.call.hangup(caller.endpoint.now())  # BYE through Kamailio (Record-Route)
                    bye_at = time.time()
                    await wait_event(call.ended, 10, "the end of the call", caller)
                    assert call.end_reason == "local-bye"
            finally:
                rtp.close()
            code, out = await asyncio.to_thread(phone.wait, 15)
            assert code == 0, f"the phone did not see CANCEL / 487 / ACK: {out}"

            created = await watch.wait_for("message.created", limit=20, username="alice")
            assert created.at - bye_at < 10
            message_id = created.data["message_id"]

            # The REST API lists it, ~5 s long.
            listing = (await http.get("/api/v1/messages", headers=auth)).json()
            assert listing["total"] == 1 and listing["unheard"] == 1, listing
            item = listing["items"][0]
            assert item["id"] == message_id
            assert abs(item["duration_s"] - MESSAGE_SECONDS) < 0.3, item
            assert item["caller_uri"] == f"sip:bob@{domain}"
            assert item["codec"].upper() == "PCMU"

            # HTTP audio: the stored WAV holds what Bob said.
            response = await http.get(item["audio_url"], headers=auth)
            assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
            stored = response.content
            pcm, rate = wav_pcm(stored)
            assert rate == RATE
            assert abs(len(pcm) / RATE - MESSAGE_SECONDS) < 0.3
            expected = through_ulaw(reference)
            assert match(expected, pcm) > 0.98
            # Its waveform peaks (stored next to it on S3 by the media-recorder) match the audio.
            from sipum_protocol.media.recording import compute_peaks

            peaks = (await http.get(item["peaks_url"], headers=auth)).json()
            assert peaks["peaks"] == compute_peaks(pcm, RATE).peaks and item["expires_at"] is None

            # The e-mail, with links that work without a password.
            mails = await asyncio.to_thread(system.smtp.wait_for, 1, 20)
            assert len(mails) == 1
            mail = mails[0]
            assert mail.recipients == ["alice@mail.test"]
            assert "Bob" in str(mail.message["Subject"]) or "bob" in str(mail.message["Subject"])
            body = mail.message.get_body(preferencelist=("plain",))
            assert body is not None
            text = body.get_content()
            web_link = re.search(r"(http://\S+/api/v1/messages/\d+/audio\?token=\S+)", text)
            rtsp_link = re.search(r"(rtsp://\S+/alice/inbox/\d+\.wav\?token=\S+)", text)
            sip_link = re.search(r"(sip:alice-\d+-retrieve@\S+)", text)
            assert web_link and rtsp_link and sip_link, text
            assert f"/{message_id}/" in web_link[1] and f"/{message_id}.wav" in rtsp_link[1]
            assert (
                sip_link[1] == f"sip:alice-{message_id}-retrieve@127.0.0.1:{system.agent_sip_port}"
            )
            async with httpx.AsyncClient(timeout=15) as anonymous:
                linked = await anonymous.get(web_link[1])
            assert linked.status_code == 200 and linked.content == stored

            # Players: ffmpeg over RTSP/UDP and TCP-interleaved, GStreamer rtspsrc, ffmpeg on
            # the web link, and a SIP retrieval call — at the same time.
            async with asyncio.TaskGroup() as players:  # one failing cancels the others
                udp = players.create_task(
                    ffmpeg_fetch(rtsp_link[1], tmp_path / "udp.raw", transport="udp")
                )
                tcp = players.create_task(
                    ffmpeg_fetch(rtsp_link[1], tmp_path / "tcp.raw", transport="tcp")
                )
                gst = players.create_task(gstreamer_fetch(rtsp_link[1], tmp_path / "gst.raw"))
                web = players.create_task(ffmpeg_fetch(web_link[1], tmp_path / "web.raw"))
                sip = players.create_task(sip_retrieve(system, sip_link[1], expected))
            for name, task in (
                ("rtsp/udp", udp),
                ("rtsp/tcp", tcp),
                ("gstreamer", gst),
                ("web", web),
            ):
                decoded = task.result()
                seconds = len(decoded) / RATE
                assert abs(seconds - MESSAGE_SECONDS) < 0.35, (name, seconds)
                assert match(expected, decoded) > 0.97, name
            retrieved, ended = sip.result()
            assert retrieved > 0.95
            assert ended == "remote-bye"  # sipum hung up after "#"

            # Listening by phone marked it heard.
            message = (await http.get(f"/api/v1/messages/{message_id}", headers=auth)).json()
            assert message["heard"] is True
        assert len(watch.of("message.created")) == 1  # one message, one event


async def test_phone_answers_first_sipum_is_cancelled_and_records_nothing(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    phones: list[SippProcess],
    tmp_path: Path,
) -> None:
    system = first_call_system
    domain = system.domain
    with explained(system):
        phone_port = free_udp_port()
        phone = start_sipp(
            sipp_argv(
                "phone_answer",
                None,
                port=phone_port,
                timeout=60,
                extra=["-set", "answer_ms", "600", "-rtp_echo"],
            ),
            cwd=tmp_path,
            port=phone_port,
        )
        phones.append(phone)
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "carol", "carol-password-1")
            auth = {"Authorization": f"Bearer {token}"}
            await set_ring_timeout(system.backends.database_url, "carol", RING_SECONDS)
            await wait_registered(system, "carol")
            await asyncio.to_thread(
                register_phone,
                system.proxy,
                user="carol",
                password="carol-password-1",
                domain=domain,
                contact_port=phone_port,
                cwd=tmp_path,
            )
            assert len(await asyncio.to_thread(system.kamailio.lookup, "carol")) == 2

            spoken = known_audio(1.5, seed=11)
            rtp = await RtpPeer().open()
            try:
                async with Caller(domain=domain) as caller:
                    call = caller.invite(f"sip:carol@{domain}", system.proxy, rtp.offer())
                    await wait_event(call.answered, 10, "the phone answering", caller)
                    assert call.call.remote_sdp is not None
                    assert b"o=phone" in call.call.remote_sdp  # the phone's answer, not sipum's
                    rtp.use_answer(call.call.remote_sdp)
                    await rtp.send_audio(spoken)
                    await asyncio.sleep(0.3)
                    # The phone echoes what Bob says: Bob talks to the phone.
                    assert match(through_ulaw(spoken), rtp.audio()) > 0.95
                    call.call.hangup(caller.endpoint.now())
                    await wait_event(call.ended, 10, "the end of the call", caller)
            finally:
                rtp.close()
            code, out = await asyncio.to_thread(phone.wait, 15)
            assert code == 0, f"the phone did not get ACK and BYE: {out}"

            # sipum's branch was forked to, rang, and was CANCELled by Kamailio.
            started = await watch.wait_for("call.started", limit=5, username="carol")
            ended = await watch.wait_for("call.ended", limit=10, username="carol")
            assert started.data["reason"] == "forked"
            # Kamailio's CANCEL says why (RFC 3326 Reason: SIP;cause=200, "Call completed
            # elsewhere"): the agent reports the call as answered elsewhere, not as given up.
            assert ended.data["end_reason"] == "answered_elsewhere", ended.data
            assert not watch.of("call.answered", username="carol")
            # Well past the ring timeout: still no message.
            await asyncio.sleep(RING_SECONDS + 1.0)
            listing = (await http.get("/api/v1/messages", headers=auth)).json()
            assert listing["total"] == 0, listing
            assert not watch.of("message.created", username="carol")


def pcap_alaw_audio(path: Path) -> np.ndarray:
    """The audio of sipp's A-law RTP capture, decoded by timestamp (a reference independent of
    how sipp paces it): classic little-endian pcap, Ethernet or Linux-cooked, IPv4/UDP/RTP."""
    import struct

    from sipum_protocol.media.codecs import alaw_decode
    from sipum_protocol.media.rtp import RtpPacket

    data = path.read_bytes()
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4, "not a little-endian microsecond pcap"
    link_header = {1: 14, 113: 16}[link]
    packets: list[RtpPacket] = []
    pos = 24
    while pos < len(data):
        _, _, length, _ = struct.unpack_from("<IIII", data, pos)
        ip = data[pos + 16 + link_header : pos + 16 + length]
        pos += 16 + length
        udp = ip[(ip[0] & 0x0F) * 4 :]
        packet = RtpPacket.parse(bytes(udp[8:]))
        if packet.payload_type == 8:
            packets.append(packet)
    first = packets[0].timestamp
    out = np.zeros(max(p.timestamp - first + len(p.payload) for p in packets), dtype=np.int16)
    for p in packets:
        start = p.timestamp - first
        out[start : start + len(p.payload)] = alaw_decode(p.payload)
    return out


async def test_readme_sipp_caller_leaves_a_message(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """The README walkthrough's caller, sipp with tests/e2e/scenarios/leave_message.xml, as the
    README runs it (through the proxy, to a mailbox with no phone): it waits out the greeting
    and beep, plays sipp's own A-law recording and hangs up; the message is that recording —
    a foreign RTP sender (sipp's pcap player) through symmetric and strict RTP."""
    system = first_call_system
    # sipp's sample capture (Debian sip-tester), the audio the scenario plays
    reference = await asyncio.to_thread(pcap_alaw_audio, Path("/usr/share/sip-tester/g711a.pcap"))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "dave", "dave-password-1")
            auth = {"Authorization": f"Bearer {token}"}
            await wait_registered(system, "dave")
            argv = sipp_argv(
                "leave_message",
                system.proxy,
                port=free_udp_port(),
                keys={"domain": system.domain},
                timeout=40,
                extra=["-s", "dave"],
            )
            code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=60)
            assert code == 0, f"the sipp caller failed: {out}"

            created = await watch.wait_for("message.created", limit=20, username="dave")
            listing = (await http.get("/api/v1/messages", headers=auth)).json()
            assert listing["total"] == 1, listing
            item = listing["items"][0]
            assert item["id"] == created.data["message_id"]
            assert item["codec"].upper() == "PCMA"
            response = await http.get(item["audio_url"], headers=auth)
            assert response.status_code == 200
            pcm, rate = wav_pcm(response.content)
            assert rate == RATE
            # sipp speaks after the greeting and the beep: all of it is the message (the README
            # promises "duration_s": 7.08)
            spoken = len(reference) / RATE
            assert abs(item["duration_s"] - spoken) < 0.3, (item, spoken)
            assert abs(len(pcm) / RATE - spoken) < 0.3
            assert match(reference, pcm) > 0.95


def watch_inbox_in_chromium(url: str, ready: threading.Event, shot: Path) -> dict[str, object]:
    """Sign in as erin, keep the inbox open (``ready`` once it is live), and note when the
    first message appears — without a reload."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        driver.get(url)
        form = wait.until(ec.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.NAME, "username").send_keys("erin")
        form.find_element(By.NAME, "password").send_keys("erin-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "0 message(s)"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        driver.execute_script("window.__sameDocument = true")
        ready.set()
        WebDriverWait(driver, 90, poll_frequency=0.05).until(
            ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 1 new")
        )
        appeared = time.time()
        driver.save_screenshot(str(shot))
        return {
            "appeared": appeared,
            "row": driver.find_element(By.CSS_SELECTOR, "#rows tr").text,
            "same_document": driver.execute_script("return window.__sameDocument === true"),
        }
    finally:
        driver.quit()


async def test_a_sipp_call_shows_up_in_the_open_web_inbox(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """The live inbox with a real call: Chromium has erin's inbox open; a sipp caller leaves a
    message through Kamailio; the row appears without a reload within 2 s of message.created."""
    system = first_call_system
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "erin", "erin-password-1")
            await wait_registered(system, "erin")
        ready = threading.Event()
        shot = tmp_path / "live-inbox.png"
        browser = asyncio.create_task(
            asyncio.to_thread(watch_inbox_in_chromium, system.web_url, ready, shot)
        )
        assert await asyncio.to_thread(ready.wait, 60), "the inbox did not go live"
        argv = sipp_argv(
            "leave_message",
            system.proxy,
            port=free_udp_port(),
            keys={"domain": system.domain},
            timeout=40,
            extra=["-s", "erin"],
        )
        code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=60)
        assert code == 0, f"the sipp caller failed: {out}"
        created = await watch.wait_for("message.created", limit=20, username="erin")
        result = await asyncio.wait_for(browser, 90)
        assert result["same_document"] is True
        assert float(result["appeared"]) - created.at < 2.0, (result, created.at)
        assert "sipp" in str(result["row"]).lower() or "sip:" in str(result["row"])
        assert shot.stat().st_size > 10_000


async def test_ring_timeout_follows_the_domain_default_and_the_users_override(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """The administrator sets the domain's ring timeout to 2 s, the user overrides it to 5 s:
    sipum answers a call after about 5 s; the override removed, after about 2 s — no restart."""
    system = first_call_system
    env = system.env()
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "sipum-admin"), "create-admin", "ops", "--password-stdin"],
        input="ops-password-123\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    async def answered_after(http: httpx.AsyncClient) -> float:
        argv = sipp_argv(
            "answer_and_hang_up", system.proxy, port=free_udp_port(),
            keys={"domain": system.domain}, timeout=30, extra=["-s", "fred"],
        )  # fmt: skip
        before = len(watch.of("call.answered", username="fred"))
        code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=40)
        assert code == 0, f"the sipp caller failed: {out}"
        for _ in range(400):  # the answer's event, at most 20 s
            if len(watch.of("call.answered", username="fred")) > before:
                break
            await asyncio.sleep(0.05)
        answered = watch.of("call.answered", username="fred")[-1]
        started = watch.of("call.started", username="fred")[-1]
        return answered.at - started.at

    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "fred", "fred-password-1")
            await wait_registered(system, "fred")
            r = await http.post(
                "/api/v1/admin/login", json={"username": "ops", "password": "ops-password-123"}
            )
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            domain = f"/api/v1/admin/domains/{system.domain}"
            user = f"/api/v1/admin/users/fred@{system.domain}"
            before = (await http.get("/api/v1/admin/domains", headers=admin)).json()
            default = next(d for d in before if d["name"] == system.domain)["ring_timeout_seconds"]
            try:
                r = await http.patch(domain, headers=admin, json={"ring_timeout_seconds": 2})
                assert r.status_code == 200, r.text
                r = await http.patch(user, headers=admin, json={"ring_timeout_seconds": 5})
                assert r.status_code == 200, r.text
                with_override = await answered_after(http)
                r = await http.patch(user, headers=admin, json={"ring_timeout_seconds": None})
                assert r.status_code == 200, r.text
                domain_default = await answered_after(http)
            finally:
                await http.patch(domain, headers=admin, json={"ring_timeout_seconds": default})
    print(
        f"answered after {with_override:.2f} s (override 5 s), {domain_default:.2f} s (default 2 s)"
    )
    assert 4.5 < with_override < 6.5, with_override
    assert 1.5 < domain_default < 3.5, domain_default


async def test_the_users_own_settings_and_disabling_take_effect_on_the_next_call(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """The user sets their ring timeout to 3 s through PATCH /api/v1/settings: the next call is
    answered after about 3 s (the running agent reads it per call: no restart). The
    administrator sets the domain's to 1 s and the user DELETEs their own value: the call after
    is answered after about 1 s. Then the administrator disables the mailbox: the agent removes
    its voicemail contact from Kamailio and a caller gets 404 from Kamailio (no contact left);
    enabled again, the contact is back."""
    system = first_call_system
    env = system.env()
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "sipum-admin"), "create-admin", "ops2", "--password-stdin"],
        input="ops2-password-123\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    agent = f"127.0.0.1:{system.agent_sip_port}"

    async def answered_after() -> float:
        argv = sipp_argv(
            "answer_and_hang_up", system.proxy, port=free_udp_port(),
            keys={"domain": system.domain}, timeout=30, extra=["-s", "gina"],
        )  # fmt: skip
        before = len(watch.of("call.answered", username="gina"))
        code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=40)
        assert code == 0, f"the sipp caller failed: {out}"
        for _ in range(400):
            if len(watch.of("call.answered", username="gina")) > before:
                break
            await asyncio.sleep(0.05)
        answered = watch.of("call.answered", username="gina")[-1]
        started = watch.of("call.started", username="gina")[-1]
        return answered.at - started.at

    async def contact_registered() -> bool:
        found = await asyncio.to_thread(system.kamailio.lookup, "gina")
        return any(agent in c.address for c in found)

    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "gina", "gina-password-1")
            http.cookies.clear()
            user = {"Authorization": f"Bearer {token}"}
            await wait_registered(system, "gina")
            r = await http.post(
                "/api/v1/admin/login", json={"username": "ops2", "password": "ops2-password-123"}
            )
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            domain = f"/api/v1/admin/domains/{system.domain}"
            before = (await http.get("/api/v1/admin/domains", headers=admin)).json()
            default = next(d for d in before if d["name"] == system.domain)["ring_timeout_seconds"]
            try:
                r = await http.patch("/api/v1/settings", headers=user,
                                     json={"ring_timeout_seconds": 3})  # fmt: skip
                assert r.status_code == 200, r.text
                own = await answered_after()
                r = await http.patch(domain, headers=admin, json={"ring_timeout_seconds": 1})
                assert r.status_code == 200, r.text
                r = await http.delete("/api/v1/settings/ring_timeout_seconds", headers=user)
                assert r.status_code == 200 and r.json()["source"] == "domain", r.text
                domains_value = await answered_after()
            finally:
                await http.patch(domain, headers=admin, json={"ring_timeout_seconds": default})

            r = await http.post(f"/api/v1/admin/users/gina@{system.domain}/disable", headers=admin)
            assert r.status_code == 200, r.text
            for _ in range(100):
                if not await contact_registered():
                    break
                await asyncio.sleep(0.1)
            assert not await contact_registered(), "the voicemail contact is still registered"
            assert (await http.get("/api/v1/messages", headers=user)).status_code == 403
            rtp = await RtpPeer().open()
            try:
                async with Caller(domain=system.domain) as caller:
                    call = caller.invite(f"sip:gina@{system.domain}", system.proxy, rtp.offer())
                    await wait_event(call.ended, 10, "the refusal of the call", caller)
                    refused = call.end_status
            finally:
                rtp.close()
            r = await http.post(f"/api/v1/admin/users/gina@{system.domain}/enable", headers=admin)
            assert r.status_code == 200, r.text
            await wait_registered(system, "gina")
    print(f"answered after {own:.2f} s (user's 3 s), {domains_value:.2f} s (domain's 1 s)")
    assert 2.5 < own < 4.5, own
    assert 0.5 < domains_value < 2.5, domains_value
    assert refused == 404, refused


async def test_a_full_mailbox_by_the_domain_default_and_room_by_the_users_override(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """Quota defaults vs overrides with real calls: the administrator sets the domain's
    max_messages to 0 — a caller is answered, told the mailbox is full and hung up on, nothing
    stored; the administrator gives the user an override of 5 — the next sipp caller's message
    is stored. (The user's ring timeout is 0 through the settings API, to keep it short.)"""
    system = first_call_system
    env = system.env()
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "sipum-admin"), "create-admin", "ops3", "--password-stdin"],
        input="ops3-password-123\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "hank", "hank-password-1")
            http.cookies.clear()
            user = {"Authorization": f"Bearer {token}"}
            await wait_registered(system, "hank")
            r = await http.patch("/api/v1/settings", headers=user, json={"ring_timeout_seconds": 0})
            assert r.status_code == 200, r.text
            r = await http.post(
                "/api/v1/admin/login", json={"username": "ops3", "password": "ops3-password-123"}
            )
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            domain = f"/api/v1/admin/domains/{system.domain}"
            before = (await http.get("/api/v1/admin/domains", headers=admin)).json()
            default = next(d for d in before if d["name"] == system.domain)["max_messages"]
            try:
                r = await http.patch(domain, headers=admin, json={"max_messages": 0})
                assert r.status_code == 200, r.text
                rtp = await RtpPeer().open()
                try:
                    async with Caller(domain=system.domain) as caller:
                        call = caller.invite(f"sip:hank@{system.domain}", system.proxy, rtp.offer())
                        await wait_event(call.answered, 15, "the answer", caller)
                        assert call.call.remote_sdp is not None
                        rtp.use_answer(call.call.remote_sdp)
                        await wait_event(call.ended, 20, "sipum hanging up", caller)
                finally:
                    rtp.close()
                ended = await watch.wait_for("call.ended", limit=10, username="hank")
                assert ended.data["end_reason"] == "mailbox_full", ended.data
                assert ended.data.get("message_id") is None
                heard = len(rtp.received)
                r = await http.patch(
                    f"/api/v1/admin/users/hank@{system.domain}", headers=admin,
                    json={"max_messages": 5},
                )  # fmt: skip
                assert r.status_code == 200, r.text
                argv = sipp_argv(
                    "leave_message", system.proxy, port=free_udp_port(),
                    keys={"domain": system.domain}, timeout=40, extra=["-s", "hank"],
                )  # fmt: skip
                code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=60)
                assert code == 0, f"the sipp caller failed: {out}"
                created = await watch.wait_for("message.created", limit=20, username="hank")
            finally:
                await http.patch(domain, headers=admin, json={"max_messages": default})
            listing = (await http.get("/api/v1/messages", headers=user)).json()
    assert heard > 25, heard  # "the mailbox is full … goodbye" was played (20 ms packets)
    assert [m["id"] for m in listing["items"]] == [created.data["message_id"]]
