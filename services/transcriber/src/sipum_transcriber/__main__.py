"""``sipum-transcriber`` / ``python -m sipum_transcriber``: turns voice messages into text"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_transcriber.service import TranscriberService
from sipum_transcriber.settings import TranscriberSettings


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="transcriber",
        settings_cls=TranscriberSettings,
        service_factory=TranscriberService,
        argv=argv,
        description="sipum transcriber: turns voice messages into text",
        uses=("postgres", "nats", "blobs"),
    )


if __name__ == "__main__":
    main()
