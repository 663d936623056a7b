"""One RTSP server connection as a state machine (sans-I/O).

Theory of operation
-------------------
The I/O layer feeds the connection's bytes to :meth:`RtspServerConnection.receive_data` and gets
requests and interleaved frames back, in order. For each request it asks
:meth:`~RtspServerConnection.target_of` which message the request is about (DESCRIBE, SETUP and
PLAY need one: a database and blob-store look-up the I/O layer does, together with the access
check), then calls :meth:`~RtspServerConnection.handle` with what it found — a
:class:`MediaInfo`, or a :class:`Denial` (401 with a challenge, 403, 404). ``handle`` returns an
:class:`Outcome`: the response to send and, for PLAY/PAUSE/TEARDOWN, an action for the streamer.
PLAY's response carries the RTP sequence number and timestamp the stream will start with
(``RTP-Info``), which only the streamer knows, so ``handle`` returns the action first and
:meth:`~RtspServerConnection.play_response` builds the response from them.

Time is an argument: every method that depends on it takes ``now`` (seconds on any monotonic
clock, the same one throughout). A session is kept alive by any request naming it and by RTCP
receiver reports (interleaved frames on this connection count for all its sessions; the I/O
layer calls ``RtspSession.touch`` for reports arriving over UDP); :meth:`expire_sessions` tears
down those silent for longer than their timeout (§12.37). :meth:`idle` tells the I/O layer to
close a connection that has received nothing for ``idle_timeout`` and plays nothing.

Access is granted per connection: once DESCRIBE (or SETUP/PLAY) on this connection was allowed
for a message — by token or Digest — requests for the same message on the same connection
(e.g. SETUP on ``Content-Base``/``trackID=0``, which carries no token) are allowed too.

Status codes (RFC 2326 §7.1.1, §11): 400 malformed, 401/403/404 from the access check,
454 unknown session, 455 method not valid in the session's state, 457 range outside the
message, 459 SETUP on the aggregate URL instead of the track, 461 unsupported transport,
501 methods we do not implement, 505 a version other than RTSP/1.0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sipum_protocol.rtsp.describe import StreamFormat, describe_message
from sipum_protocol.rtsp.message import (
    METHODS,
    Headers,
    InterleavedFrame,
    RtspFramer,
    RtspParseError,
    RtspRequest,
    RtspResponse,
)
from sipum_protocol.rtsp.session import (
    InvalidRange,
    InvalidState,
    RtspSession,
    State,
    parse_npt_range,
)
from sipum_protocol.rtsp.transport import UnsupportedTransport, choose_transport
from sipum_protocol.rtsp.urls import BadMessageUrl, MessageUrl, content_base, parse_message_url

SERVER = "sipum-rtsp/0.1"
PUBLIC = ", ".join(METHODS)
NEEDS_MEDIA = ("DESCRIBE", "SETUP", "PLAY")


@dataclass(frozen=True)
class MediaInfo:
    """A message the client may play."""

    title: str
    duration: float
    fmt: StreamFormat
    sdp_session_id: int


@dataclass(frozen=True)
class Denial:
    """The access check said no: 401 (with ``WWW-Authenticate``), 403 or 404."""

    status: int
    challenge: str | None = None


@dataclass(frozen=True)
class Play:
    session: RtspSession
    start: float | None
    """Seconds to start from; None resumes from the paused position."""
    end: float
    track_url: str


@dataclass(frozen=True)
class Pause:
    session: RtspSession


@dataclass(frozen=True)
class Teardown:
    session: RtspSession


Action = Play | Pause | Teardown


@dataclass
class Outcome:
    response: RtspResponse | None
    action: Action | None = None


@dataclass
class RtspServerConnection:
    """Protocol state of one RTSP control connection."""

    last_activity: float = field(kw_only=True)
    """When bytes last arrived; pass the time the connection was accepted."""
    session_timeout: int = 60
    max_sessions: int = 4
    idle_timeout: float = 120.0
    """A connection that received nothing for this long and plays nothing is closed."""
    framer: RtspFramer = field(default_factory=RtspFramer)
    sessions: dict[str, RtspSession] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)

    # -- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[RtspRequest | InterleavedFrame]:
        """Complete requests and frames; raises :class:`RtspParseError` (see :meth:`error`).

        Interleaved frames from the client are its RTCP receiver reports: they keep every
        session of the connection alive (§12.37)."""
        self.last_activity = now
        items = self.framer.feed(data)
        if any(isinstance(item, InterleavedFrame) for item in items):
            for session in self.sessions.values():
                session.touch(now)
        return items

    @staticmethod
    def error(exc: RtspParseError) -> RtspResponse:
        """The response to malformed input; the connection is closed after sending it."""
        headers = Headers([("Server", SERVER), ("Connection", "close")])
        if exc.cseq is not None:
            headers.add("CSeq", exc.cseq)
        return RtspResponse(exc.status, headers, reason=None)

    def target_of(self, request: RtspRequest) -> MessageUrl | None:
        """The message a request needs looked up, or None. Raises :class:`BadMessageUrl`."""
        if request.method not in NEEDS_MEDIA:
            return None
        return parse_message_url(request.url)

    def is_granted(self, target: MessageUrl) -> bool:
        return target.aggregate_path in self.granted

    # -- requests ------------------------------------------------------------------------------

    def _response(self, request: RtspRequest, status: int, **extra: str) -> RtspResponse:
        headers = Headers([("CSeq", request.cseq or "0"), ("Server", SERVER)])
        for name, value in extra.items():
            headers.add(name.replace("_", "-"), value)
        return RtspResponse(status, headers)

    def _session_of(self, request: RtspRequest, now: float) -> RtspSession | RtspResponse:
        session_id = request.session_id
        session = self.sessions.get(session_id) if session_id else None
        if session is None:
            return self._response(request, 454)
        session.touch(now)
        return session

    def handle(
        self,
        request: RtspRequest,
        now: float,
        *,
        media: MediaInfo | None = None,
        denial: Denial | None = None,
        allocate_ports: Callable[[], tuple[int, int]] | None = None,
    ) -> Outcome:
        method = request.method
        if method == "OPTIONS":
            return Outcome(self._response(request, 200, Public=PUBLIC))
        if method not in METHODS:
            return Outcome(self._response(request, 501, Allow=PUBLIC))
        if method in NEEDS_MEDIA:
            try:
                target = parse_message_url(request.url)
            except BadMessageUrl:
                return Outcome(self._response(request, 404))
            if denial is not None:
                extra = {"WWW_Authenticate": denial.challenge} if denial.challenge else {}
                return Outcome(self._response(request, denial.status, **extra))
            if media is None:
                return Outcome(self._response(request, 404))
            self.granted.add(target.aggregate_path)
            if method == "DESCRIBE":
                return Outcome(self._describe(request, media))
            if method == "SETUP":
                return Outcome(self._setup(request, target, now, allocate_ports))
            return self._play(request, media, now)
        session = self._session_of(request, now)
        if isinstance(session, RtspResponse):
            return Outcome(session)
        if method == "GET_PARAMETER":  # keep-alive (§10.8)
            return Outcome(self._response(request, 200, Session=session.header))
        try:
            session.apply(method)
        except InvalidState:
            return Outcome(self._response(request, 455, Allow=self._allowed(session)))
        response = self._response(request, 200, Session=session.header)
        if method == "PAUSE":
            return Outcome(response, Pause(session))
        del self.sessions[session.id]  # TEARDOWN
        return Outcome(response, Teardown(session))

    @staticmethod
    def _allowed(session: RtspSession) -> str:
        from sipum_protocol.rtsp.session import TRANSITIONS

        methods = ["OPTIONS", "DESCRIBE", "GET_PARAMETER"]
        methods += [m for (state, m) in TRANSITIONS if state is session.state]
        return ", ".join(dict.fromkeys(methods))

    def _describe(self, request: RtspRequest, media: MediaInfo) -> RtspResponse:
        accept = request.headers.get("Accept")
        if accept and "application/sdp" not in accept and "*/*" not in accept:
            return self._response(request, 406)
        body = describe_message(
            title=media.title,
            duration_s=media.duration,
            fmt=media.fmt,
            session_id=media.sdp_session_id,
        )
        response = self._response(
            request,
            200,
            Content_Type="application/sdp",
            Content_Base=content_base(request.url),
        )
        response.body = body
        return response

    def _setup(
        self,
        request: RtspRequest,
        target: MessageUrl,
        now: float,
        allocate_ports: Callable[[], tuple[int, int]] | None,
    ) -> RtspResponse:
        if not target.track:
            # One track per message: SETUP must name it (Content-Base + a=control).
            return self._response(request, 459)
        try:
            spec = choose_transport(request.headers.get("Transport"))
        except UnsupportedTransport:
            return self._response(request, 461, Unsupported="transport")
        existing_id = request.session_id
        if existing_id is not None:
            session_or_error = self._session_of(request, now)
            if isinstance(session_or_error, RtspResponse):
                return session_or_error
            session = session_or_error
            if session.state is State.PLAYING:
                return self._response(request, 455, Allow=self._allowed(session))
            if session.transport != spec:
                return self._response(request, 455, Allow=self._allowed(session))
        else:
            if len(self.sessions) >= self.max_sessions:
                return self._response(request, 453, Reason="too many sessions")
            session = RtspSession(
                url=content_base(request.url),
                transport=spec,
                timeout=self.session_timeout,
                last_seen=now,
            )
        server_ports: tuple[int, int] | None = None
        if not spec.tcp:
            if allocate_ports is None:
                return self._response(request, 461)
            try:
                server_ports = allocate_ports()
            except (OSError, RuntimeError):  # no free port pair: try again later
                return self._response(request, 503, Retry_After="5")
        session.apply("SETUP")
        self.sessions[session.id] = session
        return self._response(
            request,
            200,
            Session=session.header,
            Transport=spec.reply(server_ports=server_ports, ssrc=session.ssrc),
        )

    def _play(self, request: RtspRequest, media: MediaInfo, now: float) -> Outcome:
        session = self._session_of(request, now)
        if isinstance(session, RtspResponse):
            return Outcome(session)
        try:
            start, end = parse_npt_range(request.headers.get("Range"), media.duration)
        except InvalidRange:
            return Outcome(self._response(request, 457))
        try:
            session.apply("PLAY")
        except InvalidState:
            return Outcome(self._response(request, 455, Allow=self._allowed(session)))
        track_url = session.url + "trackID=0"
        return Outcome(None, Play(session, start, end, track_url))

    def play_response(
        self, request: RtspRequest, play: Play, *, seq: int, rtptime: int
    ) -> RtspResponse:
        """The PLAY response, once the streamer knows where the stream starts."""
        start = play.session.position if play.start is None else play.start
        return self._response(
            request,
            200,
            Session=play.session.header,
            Range=f"npt={start:.3f}-{play.end:.3f}",
            RTP_Info=f"url={play.track_url};seq={seq};rtptime={rtptime}",
        )

    def expire_sessions(self, now: float) -> list[RtspSession]:
        """Sessions not heard from within their timeout (removed)."""
        gone = [s for s in self.sessions.values() if s.expired(now)]
        for session in gone:
            del self.sessions[session.id]
        return gone

    def idle(self, now: float) -> bool:
        """Nothing received for ``idle_timeout`` and no session playing: close the connection."""
        if any(session.state is State.PLAYING for session in self.sessions.values()):
            return False
        return now - self.last_activity > self.idle_timeout
