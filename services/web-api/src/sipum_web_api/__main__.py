"""``sipum-web-api`` / ``python -m sipum_web_api``: web inbox and REST API"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_web_api.app import create_app
from sipum_web_api.service import WebApiService
from sipum_web_api.settings import WebApiSettings


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="web-api",
        settings_cls=WebApiSettings,
        service_factory=WebApiService,
        argv=argv,
        description="sipum web-api: web inbox and REST API",
        uses=("postgres", "nats", "blobs"),
        http_app_factory=create_app,
    )


if __name__ == "__main__":
    main()
