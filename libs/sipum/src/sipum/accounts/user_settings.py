"""A user changing their own settings (``/api/v1/settings``): only those the settings model lets a
user set (``sipum.db.settings.USER_SETTABLE``), only within their bounds; every change is
announced as ``user.updated`` naming the changed settings (never a value)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sipum.db import Pool, settings, users
from sipum.events import EventBus, UserUpdated

log = logging.getLogger("sipum.misc.settings")


class SettingRefused(ValueError):
    """Not a setting, not the user's to change, or out of bounds (message says which)."""


def check_own(changes: Mapping[str, object]) -> dict[str, settings.Value]:
    """``changes`` checked for a user changing their own settings (None: back to the default)."""
    for name in changes:
        found = settings.SETTINGS.get(name)
        if found is None:
            raise SettingRefused(f"not a setting: {name}")
        if not found.user_may_set:
            raise SettingRefused(f"{name} is set by the administrator")
    try:
        return settings.check_values(changes, allowed=settings.USER_SETTABLE)
    except settings.InvalidSetting as exc:
        raise SettingRefused(str(exc)) from None


async def change_own(
    pool: Pool, bus: EventBus, user: users.User, changes: Mapping[str, object]
) -> list[str]:
    """Store the user's own values (None clears one); returns the names that changed. A
    failure to publish is logged, not raised: the change is committed and counts from the next
    call anyway, because every service reads the settings when it needs them."""
    checked = check_own(changes)
    changed = sorted(n for n, v in checked.items() if getattr(user, n) != v)
    if not changed:
        return []
    updated = await users.update(pool, user.id, **{n: checked[n] for n in changed})
    if updated is None:
        raise SettingRefused("no such user")
    try:
        await bus.publish(
            UserUpdated(
                username=updated.username,
                domain=updated.domain,
                display_name=updated.display_name or None,
                email=updated.email,
                changed=changed,
            )  # fmt: skip
        )
    except Exception as exc:
        log.error(
            "could not publish user.updated",
            extra={"user": updated.address, "changed": changed, "error": str(exc)},
        )
    log.info("settings changed", extra={"user": updated.address, "changed": changed})
    return changed


__all__ = ["SettingRefused", "change_own", "check_own"]
