"""One media session: the RTP endpoint of a call plus what the agent tells us about it.

A session is created by an allocation and owned by this replica until it ends. It joins three
inputs into what the call flows (``record``, ``retrieve``) read:

* DTMF digits, from RFC 4733 events on the RTP stream (``RtpEndpoint.on_digit``) and from
  ``sipum.media.session.<id>.dtmf`` (digits the agent got by SIP INFO) — one queue, so digits
  typed ahead of a prompt are kept, as on any voicemail system;
* hang-up (``sipum.media.session.<id>.hangup``, the agent's BYE/CANCEL): ends a recording,
  keeping what was said, and stops any playback;
* shutdown (SIGTERM after the drain period): the same as a hang-up, but the flows know it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sipum.blobstore import BlobStore
from sipum.db import messages, users
from sipum.events import (
    EventBus,
    MediaAllocateReply,
    MediaAllocateRequest,
    SessionCommand,
    SessionDtmf,
    SessionHangup,
)
from sipum_protocol.media.endpoint import RtpEndpoint
from sipum_protocol.media.playback import PlaybackItem, PlaybackSession

from sipum_media_recorder.audio import Prompts
from sipum_media_recorder.negotiation import MediaPlan
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_media_recorder.spool import Spooled
from sipum_media_recorder.store import MessageStore

log = logging.getLogger("sipum.misc.recorder.session")

ALL_DIGITS = "0123456789*#ABCD"


@dataclass
class Services:
    """What the flows use besides the call itself."""

    settings: MediaRecorderSettings
    pool: Any
    blobs: BlobStore
    bus: EventBus
    prompts: Prompts
    store: MessageStore
    recorder_id: str


class MediaSession:
    def __init__(
        self,
        *,
        session_id: str,
        request: MediaAllocateRequest,
        user: users.User,
        endpoint: RtpEndpoint,
        plan: MediaPlan,
        reply: MediaAllocateReply,
        services: Services,
        message: messages.Message | None = None,
        spooled: Spooled | None = None,
    ) -> None:
        self.session_id = session_id
        self.request = request
        self.user = user
        self.endpoint = endpoint
        self.plan = plan
        self.reply = reply
        self.services = services
        self.message = message
        self.spooled = spooled
        """A recording taken over from a gone replica (``continue_session_id``)."""
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.hung_up = asyncio.Event()
        self.hangup_reason: str | None = None
        self.stopped_by_digit_command = False
        self.command_stop_digit: str | None = None
        """The digit (by SIP INFO) that stopped the recording, with ``stopped_by_digit_command``."""
        self.subscriptions: list[Any] = []
        self._prompt_set: Prompts | None = None
        endpoint.on_digit = self._rtp_digit

    def _rtp_digit(self, digit: str) -> None:
        log.debug("digit %s (RFC 4733)", digit, extra={"session": self.session_id})
        playback = self.endpoint.playback
        if playback is not None and digit in playback.barge_in:
            # the key went down before this prompt began (no barge-in then): stop it now
            self.endpoint.stop_playback()
        self.digits.put_nowait(digit)

    @property
    def prompt_set(self) -> Prompts:
        """The prompts this call speaks: the mailbox's ``prompt_language`` set once a flow chose
        it (:meth:`use_prompt_language`), else the default set."""
        return self._prompt_set or self.services.prompts

    def use_prompt_language(self, tag: str | None) -> None:
        """Speak the set of *tag* (the mailbox's ``prompt_language``; None: the default) from
        now on — every :meth:`prompt`, and what the flows render through :attr:`prompt_set`."""
        self._prompt_set = self.services.prompts.language(tag)

    @property
    def ended_by_caller(self) -> bool:
        return self.hung_up.is_set() and self.hangup_reason != "shutdown"

    # -- inputs -----------------------------------------------------------------------------

    async def on_command(self, command: SessionCommand) -> None:
        if isinstance(command, SessionHangup):
            self.hangup(command.reason)
        elif isinstance(command, SessionDtmf):
            self.digit_from_signalling(command.digit)

    def hangup(self, reason: str = "bye") -> None:
        """End the call's media: a recording stops and keeps what was said; playback stops.
        A repeated hang-up changes nothing."""
        if self.hung_up.is_set():
            return
        self.hangup_reason = reason
        self.hung_up.set()
        self.endpoint.hangup()

    def digit_from_signalling(self, digit: str) -> None:
        """A digit that came by SIP INFO: same effects as an RFC 4733 event."""
        endpoint = self.endpoint
        playback = endpoint.playback
        if playback is not None and digit in playback.barge_in:
            endpoint.stop_playback()
        recording = endpoint.recording
        if recording is not None and digit in recording.session.settings.stop_digits:
            # the endpoint has no public "digit" input; ending the recording like a hang-up
            # keeps the same audio (an INFO digit leaves no tone in the stream to cut off)
            self.stopped_by_digit_command = True
            self.command_stop_digit = digit
            endpoint.hangup()
        self.digits.put_nowait(digit)

    # -- helpers for the flows ----------------------------------------------------------------

    async def play(
        self, items: Sequence[PlaybackItem], *, barge_in: str = ""
    ) -> PlaybackSession | None:
        """Play *items*; None without playing if the caller has hung up."""
        if self.hung_up.is_set() or not items:
            return None
        log.debug("playing %d items", len(items), extra={"session": self.session_id})
        played = await self.endpoint.play(items, barge_in=barge_in, ptime=self.plan.ptime)
        log.debug(
            "played %.2fs%s",
            played.position,
            f", interrupted by {played.interrupted_by}" if played.interrupted_by else "",
            extra={"session": self.session_id},
        )
        return played

    async def prompt(self, *names: str, barge_in: str = "") -> PlaybackSession | None:
        prompts = self.prompt_set
        rate = prompts.rate_for(self.plan.codec)
        return await self.play(await prompts.names(names, rate), barge_in=barge_in)

    async def next_digit(self, wait: float, accept: str = ALL_DIGITS) -> str | None:
        """The next digit in *accept* (others are dropped); None after *wait* seconds without
        one, or on hang-up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self.hung_up.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            get = asyncio.ensure_future(self.digits.get())
            gone = asyncio.ensure_future(self.hung_up.wait())
            try:
                done, _ = await asyncio.wait(
                    {get, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (get, gone):
                    if not task.done():
                        task.cancel()
            if get in done:
                digit = get.result()
                if digit in accept:
                    return digit
            elif get.done() and not get.cancelled():
                # got a digit in the same instant as the hang-up: put it back for nobody
                self.digits.put_nowait(get.result())
        return None

    def clear_digits(self) -> None:
        while not self.digits.empty():
            self.digits.get_nowait()

    async def close(self) -> None:
        for sub in self.subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.subscriptions = []
        await self.endpoint.close()
