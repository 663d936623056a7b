"""Saying values on the phone: numbers, digits, ordinal dates and times as prompt-name sequences.

Pure functions from a value to the names of prompts in
:data:`sipum_protocol.media.prompts.PROMPT_TEXTS` (every one rendered at build time like the
other prompts: ``number-*``, ``ordinal-*``, ``weekday-*``, ``month-*``, ``today``, ``at``…); the player turns the
names into files (``PromptLibrary.paths``). Nothing here reads a clock: dates are said relative
to a ``now`` the caller passes, in the time zone the caller passes (the mailbox's).

* :func:`number` — 0 to 999 999 as words ("two hundred forty one"), larger digit by digit;
* :func:`digits` — a phone number digit by digit ("+1 (212) 555" → one two one two …);
* :func:`ordinal` — 1st to 31st ("twenty first");
* :func:`time_of_day` — 12-hour clock: "three" "P M" at 15:00, "nine" "oh" "five" "A M" at 9:05,
  "twelve" "fifteen" "P M" at 12:15;
* :func:`date` — "today" / "yesterday", a weekday within the last week ("Monday"), else month and
  ordinal day ("December" "fourth"), with the year when it is not this year's;
* :func:`when` — date + "at" + time, e.g. for a message's envelope.
"""

from __future__ import annotations

from datetime import date as Date  # noqa: N812 - the parameter is called date
from datetime import datetime, timedelta, tzinfo

from .prompts import MONTHS, ORDINAL_WORDS, WEEKDAYS, digit_prompts, number_words


def number(n: int) -> list[str]:
    """0 to 999 999 in words; larger numbers digit by digit."""
    if n < 0:
        raise ValueError("only numbers from zero up are said")
    if n >= 1_000_000:
        return digit_prompts(str(n))
    thousands, rest = divmod(n, 1000)
    if not thousands:
        return number_words(rest)
    names = [*number_words(thousands), "number-thousand"]
    if rest:
        names += number_words(rest)
    return names


def digits(text: str) -> list[str]:
    """The digits (and ``*``/``#``) of *text* one by one; anything else is skipped."""
    return digit_prompts(text)


def ordinal(n: int) -> list[str]:
    """1st to 31st (days of a month)."""
    if n not in ORDINAL_WORDS:
        raise ValueError("ordinals are said from 1 to 31")
    return [f"ordinal-{n}"]


def year(n: int) -> list[str]:
    """A year the way it is read: 2026 → "two thousand twenty six", 1999 → "nineteen ninety
    nine", 1900 → "nineteen hundred"."""
    if not 1000 <= n <= 9999:
        return number(n)
    century, rest = divmod(n, 100)
    if 2000 <= n < 2010 or century % 10 == 0:
        return number(n)
    if rest == 0:
        return [*number_words(century), "number-hundred"]
    tail = ["oh", f"number-{rest}"] if rest < 10 else number_words(rest)
    return [*number_words(century), *tail]


def time_of_day(hour: int, minute: int) -> list[str]:
    """12-hour clock with A M / P M; ``minute`` under 10 is said "oh five"."""
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError("not a time of day")
    twelve = hour % 12 or 12
    names = number_words(twelve)
    if minute:
        names += ["oh", f"number-{minute}"] if minute < 10 else number_words(minute)
    names.append("am" if hour < 12 else "pm")
    return names


def date(day: Date, today: Date) -> list[str]:
    """*day* said from *today*'s point of view (both in the mailbox's time zone)."""
    if day == today:
        return ["today"]
    if day == today - timedelta(days=1):
        return ["yesterday"]
    if today - timedelta(days=6) <= day < today:
        return [f"weekday-{WEEKDAYS[day.weekday()]}"]
    names = [f"month-{MONTHS[day.month - 1]}", *ordinal(day.day)]
    if day.year != today.year:
        names += year(day.year)
    return names


def when(moment: datetime, now: datetime, zone: tzinfo) -> list[str]:
    """Date and time of *moment* in *zone*, the date relative to *now*: "yesterday at three
    fifteen P M". Both datetimes must be aware."""
    if moment.tzinfo is None or now.tzinfo is None:
        raise ValueError("aware datetimes only")
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    return [*date(local.date(), today), "at", *time_of_day(local.hour, local.minute)]
