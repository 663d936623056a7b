"""The PIN lockout rules on a fake clock: window, lock, exponential back-off, cap; and the
trivial-PIN check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sipum.security.passwords import WeakSecretError, check_pin_strength, trivial_pin_reason
from sipum.security.pin_lockout import LockoutPolicy, LockoutState, record_failure

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=3, window_seconds=600, base_seconds=60, max_seconds=400)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(state: LockoutState, seconds: float) -> tuple[LockoutState, bool]:
    outcome = record_failure(state, at(seconds), POLICY)
    return outcome.state, outcome.newly_locked


def test_the_third_failure_in_the_window_locks_for_the_base_time() -> None:
    state = LockoutState()
    state, locked = fail(state, 0)
    assert not locked and state.failures == 1 and not state.locked(at(0))
    state, locked = fail(state, 100)
    assert not locked and state.failures == 2
    state, locked = fail(state, 599)
    assert locked and state.lockouts == 1 and state.failures == 0
    assert state.locked_until == at(599 + 60)
    assert state.locked(at(658.9)) and not state.locked(at(659))
    assert state.remaining_seconds(at(629)) == 30


def test_failures_outside_the_window_start_a_new_count() -> None:
    state = LockoutState()
    state, _ = fail(state, 0)
    state, _ = fail(state, 300)
    state, locked = fail(state, 600)  # the window of the first failure is over
    assert not locked and state.failures == 1 and state.window_started_at == at(600)
    state, locked = fail(state, 700)
    assert not locked and state.failures == 2


def test_each_further_lock_is_twice_as_long_up_to_the_cap() -> None:
    state = LockoutState()
    now = 0.0
    lengths = []
    for _ in range(5):
        for _ in range(3):
            state, locked = fail(state, now)
        assert locked
        assert state.locked_until is not None
        lengths.append((state.locked_until - at(now)).total_seconds())
        now = (state.locked_until - T0).total_seconds()  # the lock is over: try again
    assert lengths == [60, 120, 240, 400, 400]
    assert state.lockouts == 5


def test_a_failure_while_locked_is_counted_but_neither_extends_nor_repeats_the_lock() -> None:
    state = LockoutState()
    for second in (0, 1, 2):
        state, locked = fail(state, second)
    until = state.locked_until
    for second in (3, 4, 5, 6):
        state, locked = fail(state, second)
        assert not locked
    assert state.locked_until == until and state.lockouts == 1 and state.failures == 4


def test_a_clock_that_went_back_starts_a_new_window() -> None:
    state, _ = fail(LockoutState(), 100)
    state, locked = fail(state, 50)
    assert not locked and state.failures == 1 and state.window_started_at == at(50)


def test_policy_bounds() -> None:
    with pytest.raises(ValueError):
        LockoutPolicy(max_failures=0)
    with pytest.raises(ValueError):
        LockoutPolicy(base_seconds=100, max_seconds=10)
    assert LockoutPolicy(base_seconds=1, max_seconds=10).lock_seconds(10_000) == 10


@pytest.mark.parametrize(
    ("pin", "username", "reason"),
    [
        ("1111", None, "one digit repeated"),
        ("000000", None, "one digit repeated"),
        ("1234", None, "consecutive"),
        ("0123", None, "consecutive"),
        ("4321", None, "consecutive"),
        ("7890", None, "consecutive"),
        ("98765432", None, "consecutive"),
        ("1212", None, "pattern repeated"),
        ("123123", None, "pattern repeated"),
        ("4711", "4711", "mailbox number"),
        ("10001", "bob10001", "mailbox number"),
        ("52101", "210", "mailbox number"),
    ],
)
def test_trivial_pins_are_refused(pin: str, username: str | None, reason: str) -> None:
    found = trivial_pin_reason(pin, username=username)
    assert found is not None and reason in found
    with pytest.raises(WeakSecretError, match=reason):
        check_pin_strength(pin, username=username)


@pytest.mark.parametrize(
    ("pin", "username"),
    [("2468", "alice"), ("5820", "alice"), ("97531", None), ("4712", "4711"), ("1357", "ab12")],
)
def test_ordinary_pins_pass(pin: str, username: str | None) -> None:
    assert trivial_pin_reason(pin, username=username) is None
    check_pin_strength(pin, username=username)


def test_malformed_pins_keep_their_message() -> None:
    with pytest.raises(WeakSecretError, match="4 to 12 digits"):
        check_pin_strength("12")
