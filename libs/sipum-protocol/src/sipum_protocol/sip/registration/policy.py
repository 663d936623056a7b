"""When a binding is refreshed and how failures back off (the timing of §10.2.4 refreshes and
RFC 5626 §4.5 style retries), as pure functions of a policy and a random source."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RegistrationPolicy", "backoff_delay", "refresh_delay"]


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """Timing knobs (seconds)."""

    refresh_margin: float = 30.0
    """Refresh at ``max(expires/2, expires - refresh_margin)``."""
    refresh_jitter: float = 0.1
    """… times a random factor in ``[1 - refresh_jitter, 1]``."""
    backoff_base: float = 30.0
    backoff_max: float = 1800.0
    max_challenge_retries: int = 2
    """Consecutive re-challenges accepted (``stale=true`` or pre-emptive credentials refused)."""
    max_interval_retries: int = 2
    """Consecutive ``423 Interval Too Brief`` answers accepted."""


def refresh_delay(expires: float, policy: RegistrationPolicy, rng: random.Random) -> float:
    """Seconds after a successful REGISTER at which to refresh (see module docstring)."""
    base = max(expires / 2.0, expires - policy.refresh_margin)
    return base * rng.uniform(1.0 - policy.refresh_jitter, 1.0)


def backoff_delay(failures: int, policy: RegistrationPolicy, rng: random.Random) -> float:
    """RFC 5626 §4.5 style: ``min(max, base·2^(failures-1))`` times a factor in [0.5, 1]."""
    ceiling = min(policy.backoff_max, policy.backoff_base * (2 ** max(0, failures - 1)))
    return float(ceiling * rng.uniform(0.5, 1.0))
