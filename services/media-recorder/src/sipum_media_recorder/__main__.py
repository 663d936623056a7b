"""``sipum-media-recorder`` / ``python -m sipum_media_recorder``: RTP media: greetings, recording, DTMF, playback"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_media_recorder.service import MediaRecorderService
from sipum_media_recorder.settings import MediaRecorderSettings


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="media-recorder",
        settings_cls=MediaRecorderSettings,
        service_factory=MediaRecorderService,
        argv=argv,
        description="sipum media-recorder: RTP media: greetings, recording, DTMF, playback",
        uses=("postgres", "nats", "blobs"),
    )


if __name__ == "__main__":
    main()
