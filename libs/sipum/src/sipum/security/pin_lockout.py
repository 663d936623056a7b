"""The phone PIN lockout rules: wrong PINs counted per mailbox across calls (pure, fed ``now``).

Three wrong PINs per call is no protection on its own: a 4-digit PIN falls to a few thousand
calls. So every wrong PIN is counted for the mailbox, whichever call and whichever recorder
replica it came from (the state lives in PostgreSQL, ``sipum.db.pin_lockouts``):

* failures count within a window (``window_seconds``) that starts at the first failure; a
  failure after the window has passed starts a new window at one;
* the ``max_failures``-th failure inside a window **locks** phone access until
  ``now + base_seconds · 2^(lockouts)`` (capped at ``max_seconds``): the first lock lasts
  ``base_seconds``, every further lock twice as long as the one before. The failure count starts
  again at zero; the lock count stays;
* while locked, the PIN is not even asked (the caller hears that the mailbox is locked); a
  wrong PIN that still arrives (typed on another replica just before the lock) is counted but
  neither extends nor repeats the lock;
* a correct PIN by phone, a web login, a new PIN or an administrator's unlock forgets it all
  (the row is deleted), so the back-off starts from ``base_seconds`` again.

This module holds only the rules; :mod:`sipum.db.pin_lockouts` applies them under a row lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class LockoutPolicy:
    max_failures: int = 5
    """Wrong PINs within ``window_seconds`` that lock the mailbox's phone access."""
    window_seconds: float = 900.0
    """How long failures are counted together (from the first one of the window)."""
    base_seconds: float = 300.0
    """Length of the first lock; each further lock is twice as long."""
    max_seconds: float = 86400.0
    """No lock is longer than this."""

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if self.window_seconds <= 0 or self.base_seconds <= 0:
            raise ValueError("window_seconds and base_seconds must be positive")
        if self.max_seconds < self.base_seconds:
            raise ValueError("max_seconds must not be below base_seconds")

    def lock_seconds(self, lockouts: int) -> float:
        """Length of the lock number *lockouts* (1 = the first)."""
        if lockouts < 1:
            raise ValueError("lockouts start at 1")
        # 2^(n-1), computed without overflowing for absurd counts
        exponent = min(lockouts - 1, 64)
        return float(min(self.base_seconds * 2.0**exponent, self.max_seconds))


@dataclass(frozen=True, slots=True, kw_only=True)
class LockoutState:
    """One mailbox's row (``pin_lockouts``); the empty state is a mailbox without failures."""

    failures: int = 0
    window_started_at: datetime | None = None
    locked_until: datetime | None = None
    lockouts: int = 0
    last_failure_at: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def remaining_seconds(self, now: datetime) -> float:
        if self.locked_until is None:
            return 0.0
        return max(0.0, (self.locked_until - now).total_seconds())


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    state: LockoutState
    newly_locked: bool
    """This failure locked the mailbox (publish ``mailbox.locked``, tell the owner)."""
    failures_in_window: int
    """The failures that counted towards this outcome (for the event and the log)."""


def record_failure(state: LockoutState, now: datetime, policy: LockoutPolicy) -> FailureOutcome:
    """The state after one more wrong PIN at *now*."""
    if state.locked(now):
        counted = replace(state, failures=state.failures + 1, last_failure_at=now)
        return FailureOutcome(counted, newly_locked=False, failures_in_window=counted.failures)
    window = state.window_started_at
    failures = state.failures
    if window is None or now - window >= timedelta(seconds=policy.window_seconds) or now < window:
        window, failures = now, 0
    failures += 1
    if failures < policy.max_failures:
        counted = replace(state, failures=failures, window_started_at=window, last_failure_at=now)
        return FailureOutcome(counted, newly_locked=False, failures_in_window=failures)
    lockouts = state.lockouts + 1
    locked = LockoutState(
        failures=0,
        window_started_at=None,
        locked_until=now + timedelta(seconds=policy.lock_seconds(lockouts)),
        lockouts=lockouts,
        last_failure_at=now,
    )
    return FailureOutcome(locked, newly_locked=True, failures_in_window=failures)
