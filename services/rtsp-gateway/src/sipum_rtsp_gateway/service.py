"""The rtsp-gateway service: RTSP/1.0 server streaming stored messages (see docs/rtsp.md)."""

from __future__ import annotations

import logging

from sipum.runtime import ServiceContext
from sipum_protocol.media.ports import PortPool

from sipum_rtsp_gateway.access import MessageAccess
from sipum_rtsp_gateway.audio import AudioCache
from sipum_rtsp_gateway.server import RtspGateway
from sipum_rtsp_gateway.settings import RtspGatewaySettings

log = logging.getLogger("sipum.net.rtsp")


class RtspGatewayService:
    name = "rtsp-gateway"

    def __init__(self, settings: RtspGatewaySettings) -> None:
        self.settings = settings
        self.gateway: RtspGateway | None = None

    async def start(self, ctx: ServiceContext) -> None:
        s = self.settings
        self.gateway = RtspGateway(
            access=MessageAccess(
                ctx.pool, secret_key=s.secret_key.get_secret_value(), default_domain=s.domain
            ),
            audio=AudioCache(ctx.blobs),
            ports=PortPool(s.rtp_port_min, s.rtp_port_max, host=s.rtsp_host),
            host=s.rtsp_host,
            port=s.rtsp_port,
        )
        port = await self.gateway.start()
        log.info("rtsp listening", extra={"rtsp": f"{s.rtsp_host}:{port}"})

    async def stop_accepting(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop_listening()

    async def drain(self) -> None:
        if self.gateway is not None:
            await self.gateway.drain()
