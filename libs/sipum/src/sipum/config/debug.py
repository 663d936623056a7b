"""``-d CATEGORY`` debug logging: which loggers each old sipum category switches to DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterable

#: Old sipum debug categories and the logger each one controls.  Modules log under these names
#: (or children of them, e.g. ``sipum.net.rtp``) so ``-d net`` reaches them.
DEBUG_LOGGERS: dict[str, str] = {
    "sql": "sipum.sql",  # database queries, pool, migrations
    "net": "sipum.net",  # SIP/RTP/RTSP packets sent and received, sockets
    "sdp": "sipum.sdp",  # SDP offers and answers, codec negotiation
    "misc": "sipum.misc",  # everything else worth tracing
}
DEBUG_CATEGORIES: tuple[str, ...] = ("all", *DEBUG_LOGGERS)


def debug_logger_names(categories: Iterable[str]) -> list[str]:
    """Logger names for a set of ``-d`` categories (``all`` → every one)."""
    names: list[str] = []
    for category in categories:
        if category == "all":
            wanted = list(DEBUG_LOGGERS.values())
        else:
            wanted = [DEBUG_LOGGERS[category]]
        names.extend(name for name in wanted if name not in names)
    return names


def apply_debug_categories(categories: Iterable[str]) -> list[str]:
    """Set the loggers of ``categories`` to DEBUG; returns their names."""
    names = debug_logger_names(categories)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    return names
