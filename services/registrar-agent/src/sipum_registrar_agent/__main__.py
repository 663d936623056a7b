"""``sipum-registrar-agent`` / ``python -m sipum_registrar_agent``: registers every user's voicemail contact with the SIP proxy and answers calls"""

from __future__ import annotations

from collections.abc import Sequence

from sipum.runtime import run_service_main

from sipum_registrar_agent.service import RegistrarAgentService
from sipum_registrar_agent.settings import RegistrarAgentSettings, add_arguments, apply_arguments


def main(argv: Sequence[str] | None = None) -> None:
    run_service_main(
        name="registrar-agent",
        settings_cls=RegistrarAgentSettings,
        service_factory=RegistrarAgentService,
        argv=argv,
        description="sipum registrar-agent: registers every user's voicemail contact with the SIP proxy and answers calls",
        uses=("postgres", "nats"),
        add_arguments=add_arguments,
        apply_arguments=apply_arguments,
    )


if __name__ == "__main__":
    main()
