"""``sipum-rtsp-gateway`` / ``python -m sipum_rtsp_gateway``: streams stored messages over RTSP"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_rtsp_gateway.service import RtspGatewayService
from sipum_rtsp_gateway.settings import RtspGatewaySettings


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="rtsp-gateway",
        settings_cls=RtspGatewaySettings,
        service_factory=RtspGatewayService,
        argv=argv,
        description="sipum rtsp-gateway: streams stored messages over RTSP",
        uses=("postgres", "nats", "blobs"),
    )


if __name__ == "__main__":
    main()
