"""The asyncio side of the RTSP gateway: a TCP listener, one protocol object per connection
driving :class:`sipum_protocol.rtsp.server.RtspServerConnection`, UDP port pairs for RTP/RTCP.

Requests of one connection are handled in order by one worker task (look-ups are async);
at most ``MAX_QUEUED`` may wait, more closes the connection. Once a second a watchdog asks the
protocol core, with the loop's clock, which sessions timed out (torn down here) and whether the
connection is idle (closed here); the timeouts themselves are the core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import cast

from sipum_protocol.media.ports import PortPair, PortPool
from sipum_protocol.rtsp.describe import PCMU
from sipum_protocol.rtsp.message import InterleavedFrame, RtspParseError, RtspRequest
from sipum_protocol.rtsp.server import (
    Denial,
    MediaInfo,
    Pause,
    Play,
    RtspServerConnection,
    Teardown,
)
from sipum_protocol.rtsp.session import RtspSession
from sipum_protocol.rtsp.urls import BadMessageUrl

from sipum_rtsp_gateway.access import Granted, MessageAccess
from sipum_rtsp_gateway.audio import STREAM_RATE, AudioCache
from sipum_rtsp_gateway.streamer import SessionStreamer

log = logging.getLogger("sipum.net.rtsp")

MAX_QUEUED = 16
MAX_WRITE_BUFFER = 2 * 1024 * 1024


class _RtcpReceiver(asyncio.DatagramProtocol):
    """Receiver reports from the client keep its session alive (RFC 2326 §12.37)."""

    def __init__(self, on_packet: object) -> None:
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_packet()  # type: ignore[operator]


@dataclass
class _Stream:
    session: RtspSession
    streamer: SessionStreamer | None = None
    ports: PortPair | None = None
    transports: list[asyncio.BaseTransport] = field(default_factory=list)


class RtspGateway:
    def __init__(
        self,
        *,
        access: MessageAccess,
        audio: AudioCache,
        ports: PortPool,
        host: str,
        port: int,
        max_connections: int = 256,
    ) -> None:
        self.access = access
        self.audio = audio
        self.ports = ports
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connections: set[RtspConnectionProtocol] = set()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: RtspConnectionProtocol(self), self.host, self.port
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def drain(self) -> None:
        """Let playing sessions finish, then close the connections."""
        waits = [c.wait_streams() for c in list(self.connections)]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()


class RtspConnectionProtocol(asyncio.Protocol):
    def __init__(self, gateway: RtspGateway) -> None:
        self.gateway = gateway
        # The protocol factory runs in the loop, as the connection is accepted.
        self.conn = RtspServerConnection(last_activity=asyncio.get_running_loop().time())
        self.transport: asyncio.Transport | None = None
        self.peer_host = "127.0.0.1"
        self.queue: asyncio.Queue[RtspRequest] = asyncio.Queue()
        self.streams: dict[str, _Stream] = {}
        self.worker: asyncio.Task[None] | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.closing = False

    # -- connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has the asyncio.Transport methods but is not a subclass.
        self.transport = cast(asyncio.Transport, transport)
        if len(self.gateway.connections) >= self.gateway.max_connections:
            transport.close()
            self.closing = True
            return
        self.gateway.connections.add(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_host = peer[0]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        self.worker = loop.create_task(self._work())
        self.watchdog = loop.create_task(self._watch())

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            items = self.conn.receive_data(data, asyncio.get_running_loop().time())
        except RtspParseError as exc:
            self._write(bytes(self.conn.error(exc)))
            self.close()
            return
        for item in items:
            if isinstance(item, InterleavedFrame):
                continue  # an RTCP receiver report: the core counted it as a keep-alive
            if self.queue.qsize() >= MAX_QUEUED:
                self.close()
                return
            self.queue.put_nowait(item)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self.closing and self.transport is None:
            return
        self.closing = True
        for stream in list(self.streams.values()):
            self._end_stream(stream)
        self.streams.clear()
        for task in (self.worker, self.watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.gateway.connections.discard(self)

    async def wait_streams(self) -> None:
        for stream in list(self.streams.values()):
            if stream.streamer is not None and stream.session.state.value == "playing":
                await stream.streamer.finished.wait()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # -- requests -------------------------------------------------------------------------

    async def _work(self) -> None:
        while not self.closing:
            request = await self.queue.get()
            try:
                await self._handle(request)
            except Exception:
                log.exception("RTSP request failed", extra={"method": request.method})
                from sipum_protocol.rtsp.message import Headers, RtspResponse

                self._write(bytes(RtspResponse(500, Headers([("CSeq", request.cseq or "0")]))))

    async def _handle(self, request: RtspRequest) -> None:
        loop = asyncio.get_running_loop()
        media: MediaInfo | None = None
        denial: Denial | None = None
        try:
            target = self.conn.target_of(request)
        except BadMessageUrl:
            target = None  # handle() answers 404
        granted: Granted | None = None
        if target is not None:
            verdict = await self.gateway.access.check(
                target, request, granted=self.conn.is_granted(target)
            )
            if isinstance(verdict, Denial):
                denial = verdict
            else:
                granted = verdict
                pcm = await self.gateway.audio.pcm(verdict.message.blob_key)
                media = MediaInfo(
                    title=f"{verdict.user.username} {verdict.message.id}",
                    duration=len(pcm) / STREAM_RATE,
                    fmt=PCMU,
                    sdp_session_id=verdict.message.id,
                )
        allocated: list[PortPair] = []

        def allocate() -> tuple[int, int]:
            pair = self.gateway.ports.allocate()
            allocated.append(pair)
            return pair.rtp_port, pair.rtcp_port

        outcome = self.conn.handle(
            request, loop.time(), media=media, denial=denial, allocate_ports=allocate
        )
        if outcome.response is not None and outcome.response.status != 200:
            for pair in allocated:  # SETUP failed after all
                self._release(pair)
            allocated.clear()
        if (
            request.method == "SETUP"
            and outcome.response is not None
            and outcome.response.status == 200
        ):
            await self._setup_stream(request, outcome.response, allocated, granted)
        action = outcome.action
        if isinstance(action, Play):
            stream = self.streams[action.session.id]
            assert stream.streamer is not None
            seq, rtptime = stream.streamer.play(action.start, action.end)
            action.session.position = (
                stream.streamer.position if action.start is None else action.start
            )
            self._write(bytes(self.conn.play_response(request, action, seq=seq, rtptime=rtptime)))
            return
        if isinstance(action, Pause):
            stream = self.streams[action.session.id]
            if stream.streamer is not None:
                stream.streamer.pause()
                action.session.position = stream.streamer.position
        elif isinstance(action, Teardown):
            ended = self.streams.pop(action.session.id, None)
            if ended is not None:
                self._end_stream(ended)
        if outcome.response is not None:
            self._write(bytes(outcome.response))

    async def _setup_stream(
        self,
        request: RtspRequest,
        response: object,
        allocated: list[PortPair],
        granted: Granted | None,
    ) -> None:
        session_id = request.session_id or str(response.headers.get("Session")).split(";")[0]  # type: ignore[attr-defined]
        session = self.conn.sessions[session_id]
        stream = self.streams.get(session_id) or _Stream(session)
        self.streams[session_id] = stream
        if granted is None:
            return
        pcm = await self.gateway.audio.pcm(granted.message.blob_key)
        spec = session.transport
        if spec.tcp:
            assert spec.interleaved is not None
            rtp_channel, rtcp_channel = spec.interleaved

            def send_rtp(packet: bytes) -> None:
                self._send_interleaved(rtp_channel, packet)

            def send_rtcp(packet: bytes) -> None:
                self._send_interleaved(rtcp_channel, packet)
        else:
            assert spec.client_ports is not None and allocated
            pair = allocated[0]
            stream.ports = pair
            loop = asyncio.get_running_loop()
            rtp_transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=pair.rtp_socket
            )
            rtcp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _RtcpReceiver(lambda: session.touch(loop.time())), sock=pair.rtcp_socket
            )
            stream.transports += [rtp_transport, rtcp_transport]
            rtp_to = (self.peer_host, spec.client_ports[0])
            rtcp_to = (self.peer_host, spec.client_ports[1])

            def send_rtp(packet: bytes) -> None:
                rtp_transport.sendto(packet, rtp_to)

            def send_rtcp(packet: bytes) -> None:
                rtcp_transport.sendto(packet, rtcp_to)

        if stream.streamer is not None:
            stream.streamer.stop()
        stream.streamer = SessionStreamer(
            pcm,
            ssrc=session.ssrc,
            send_rtp=send_rtp,
            send_rtcp=send_rtcp,
            cname=f"sipum@{self.gateway.host}",
        )

    def _send_interleaved(self, channel: int, packet: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise OSError("RTSP connection closed")
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            raise OSError("client does not read its interleaved stream")
        transport.write(bytes(InterleavedFrame(channel, packet)))

    def _release(self, pair: PortPair) -> None:
        for sock in (pair.rtp_socket, pair.rtcp_socket):
            with contextlib.suppress(OSError):
                sock.close()
        self.gateway.ports.release(pair.rtp_port)

    def _end_stream(self, stream: _Stream) -> None:
        if stream.streamer is not None:
            stream.streamer.stop()
        for transport in stream.transports:
            transport.close()
        if stream.ports is not None:
            self.gateway.ports.release(stream.ports.rtp_port)
            if not stream.transports:
                self._release(stream.ports)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closing:
            await asyncio.sleep(1.0)
            now = loop.time()
            for session in self.conn.expire_sessions(now):
                stream = self.streams.pop(session.id, None)
                if stream is not None:
                    log.info("RTSP session timed out", extra={"session": session.id})
                    self._end_stream(stream)
            if self.conn.idle(now):
                self.close()
                return
