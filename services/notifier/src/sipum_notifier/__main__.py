"""``sipum-notifier`` / ``python -m sipum_notifier``: e-mails users about new messages"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_notifier.service import NotifierService
from sipum_notifier.settings import NotifierSettings, add_arguments, apply_arguments


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="notifier",
        settings_cls=NotifierSettings,
        service_factory=NotifierService,
        argv=argv,
        description="sipum notifier: e-mails users about new messages",
        uses=("postgres", "nats", "blobs"),
        add_arguments=add_arguments,
        apply_arguments=apply_arguments,
    )


if __name__ == "__main__":
    main()
