"""The say module: numbers, digits, ordinals, years, times and dates as prompt names; every
name it can produce is a prompt that exists (so it is rendered at build time)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sipum_protocol.media import say
from sipum_protocol.media.prompts import PROMPT_TEXTS

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def words(names: list[str]) -> str:
    return " ".join(PROMPT_TEXTS[n] for n in names)


@pytest.mark.parametrize(
    ("n", "said"),
    [
        (0, "zero"),
        (7, "seven"),
        (19, "nineteen"),
        (20, "twenty"),
        (21, "twenty one"),
        (100, "one hundred"),
        (241, "two hundred forty one"),
        (1000, "one thousand"),
        (1005, "one thousand five"),
        (21_310, "twenty one thousand three hundred ten"),
        (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
        (1_000_000, "one zero zero zero zero zero zero"),
    ],
)
def test_numbers(n: int, said: str) -> None:
    assert words(say.number(n)) == said


def test_negative_numbers_and_bad_ordinals_are_refused() -> None:
    with pytest.raises(ValueError):
        say.number(-1)
    with pytest.raises(ValueError):
        say.ordinal(32)
    with pytest.raises(ValueError):
        say.time_of_day(24, 0)


def test_digits_skip_what_is_not_a_key() -> None:
    assert words(say.digits("+1 (212) 555-0*#")) == "one two one two five five five zero star pound"


@pytest.mark.parametrize(
    ("n", "said"),
    [(1, "first"), (2, "second"), (3, "third"), (11, "eleventh"), (22, "twenty second"),
     (30, "thirtieth"), (31, "thirty first")],
)  # fmt: skip
def test_ordinals(n: int, said: str) -> None:
    assert words(say.ordinal(n)) == said


@pytest.mark.parametrize(
    ("n", "said"),
    [(2026, "two thousand twenty six"), (2005, "two thousand five"), (1999, "nineteen ninety nine"),
     (1905, "nineteen oh five"), (1900, "nineteen hundred"), (2000, "two thousand")],
)  # fmt: skip
def test_years(n: int, said: str) -> None:
    assert words(say.year(n)) == said


@pytest.mark.parametrize(
    ("hour", "minute", "said"),
    [(0, 0, "twelve A M"), (0, 30, "twelve thirty A M"), (9, 5, "nine oh five A M"),
     (12, 0, "twelve P M"), (12, 15, "twelve fifteen P M"), (15, 0, "three P M"),
     (23, 59, "eleven fifty nine P M")],
)  # fmt: skip
def test_times(hour: int, minute: int, said: str) -> None:
    assert words(say.time_of_day(hour, minute)) == said


def test_dates_relative_to_today() -> None:
    today = date(2026, 12, 4)  # a Friday
    assert words(say.date(today, today)) == "today"
    assert words(say.date(today - timedelta(days=1), today)) == "yesterday"
    assert words(say.date(date(2026, 11, 30), today)) == "Monday"
    assert words(say.date(date(2026, 11, 28), today)) == "Saturday"
    assert words(say.date(date(2026, 11, 27), today)) == "November twenty seventh"
    assert (
        words(say.date(date(2025, 12, 31), today))
        == "December thirty first two thousand twenty five"
    )
    # a message "from the future" (clock skew): month and day, not a weekday
    assert words(say.date(date(2026, 12, 5), today)) == "December fifth"


def test_when_is_in_the_mailbox_time_zone() -> None:
    moment = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    # Berlin: 4 December 00:30 — today; New York: 3 December 18:30 — yesterday
    assert words(say.when(moment, now, BERLIN)) == "today at twelve thirty A M"
    assert words(say.when(moment, now, NEW_YORK)) == "yesterday at six thirty P M"
    assert words(say.when(moment, now, UTC)) == "yesterday at eleven thirty P M"
    # summer time: 14:05 UTC is 16:05 in Berlin in July
    summer = datetime(2026, 7, 1, 14, 5, tzinfo=UTC)
    assert words(say.when(summer, now, BERLIN)) == "July first at four oh five P M"
    with pytest.raises(ValueError):
        say.when(datetime(2026, 1, 1), now, BERLIN)


def test_every_name_said_is_a_prompt() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    names: set[str] = set()
    for hours in range(0, 24 * 1070, 7):
        moment = start + timedelta(hours=hours, minutes=hours % 60)
        for days in range(7):  # every weekday is "a few days ago" from one of these
            names.update(say.when(moment, now + timedelta(days=days), BERLIN))
    for n in [*range(0, 2000), 999_999, 12_345_678]:
        names.update(say.number(n))
    names.update(say.digits("0123456789*#"))
    assert names <= set(PROMPT_TEXTS)
    assert {f"weekday-{d}" for d in say.WEEKDAYS} <= names
