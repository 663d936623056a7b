"""The media-recorder service: life cycle on the shared runtime (`sipum.runtime`).

Its main path (see docs/architecture.md) is built on the connections the runtime opens;
in-flight work is tracked so SIGTERM lets it finish.
"""

from __future__ import annotations

from sipum.runtime import ServiceContext
from sipum.runtime.work import InFlightWork

from sipum_media_recorder.settings import MediaRecorderSettings


class MediaRecorderService:
    name = "media-recorder"

    def __init__(self, settings: MediaRecorderSettings) -> None:
        self.settings = settings
        self.work = InFlightWork()
        self.ctx: ServiceContext | None = None

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def stop_accepting(self) -> None:
        self.work.close()

    async def drain(self) -> None:
        await self.work.wait()
