"""The default system prompts: generated reproducibly with espeak-ng, cached on disk.

Theory of operation
-------------------
Every prompt is a short WAV file (16-bit PCM, mono) at each audio rate a codec needs: 8000 Hz for
G.711 and 16000 Hz for G.722. Nothing is committed: the texts below are the source, and
:func:`ensure_prompts` renders them into a cache directory at install / image build time (the
``scripts/generate_prompts.py`` command) or lazily at service start.

A file's name carries a hash of everything that shapes its bytes (text, voice, speed, pitch,
amplitude, the espeak-ng and sox versions, the sample rate and this module's render version), so
changing a text or upgrading espeak-ng produces a new file instead of serving a stale one, and
two runs with the same inputs produce the same bytes (espeak-ng is deterministic; sox runs with
dither off and in repeatable mode).

Rendering: ``espeak-ng --stdin -w`` writes 22050 Hz speech; ``sox`` normalises it to a -3 dBFS peak
and resamples it (``rate -v``). The beep is pure code (a 1 kHz sine, 400 ms, raised-cosine ramps),
no espeak.

Sequences: a greeting is a list of prompt paths played back to back by
:class:`sipum_protocol.media.playback.PlaybackSession` — e.g. ``unavailable_greeting(number="1234")`` is
"The person at" · "one" · "two" · "three" · "four" · "is not available" · "Please leave a message
after the tone" · beep. A user's *name* is free text, rendered on demand with the same voice by
:meth:`PromptLibrary.spoken` and cached the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bumped whenever the rendering pipeline changes in a way that changes the bytes.
RENDER_VERSION = 1

#: Audio rates rendered by default: G.711 (8 kHz) and G.722 (16 kHz).
DEFAULT_RATES: tuple[int, ...] = (8000, 16000)

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {
    20: "twenty",
    30: "thirty",
    40: "forty",
    50: "fifty",
    60: "sixty",
    70: "seventy",
    80: "eighty",
    90: "ninety",
}

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
#: The days of a month as ordinals (``sipum_protocol.media.say.ordinal``).
ORDINAL_WORDS: dict[int, str] = {
    1: "first",
    2: "second",
    3: "third",
    4: "fourth",
    5: "fifth",
    6: "sixth",
    7: "seventh",
    8: "eighth",
    9: "ninth",
    10: "tenth",
    11: "eleventh",
    12: "twelfth",
    13: "thirteenth",
    14: "fourteenth",
    15: "fifteenth",
    16: "sixteenth",
    17: "seventeenth",
    18: "eighteenth",
    19: "nineteenth",
    20: "twentieth",
    **{20 + n: f"twenty {_word}" for n, _word in enumerate(("first", "second", "third",
        "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"), start=1)},
    30: "thirtieth",
    31: "thirty first",
}  # fmt: skip

#: name → text of every spoken system prompt.
PROMPT_TEXTS: dict[str, str] = {
    # Digits, spoken one by one for phone numbers and extensions.
    **{f"digit-{d}": _ONES[d] for d in range(10)},
    "digit-star": "star",
    "digit-hash": "pound",
    # Numbers for message counts ("you have twenty one new messages").
    **{f"number-{n}": _ONES[n] for n in range(20)},
    **{f"number-{n}": word for n, word in _TENS.items()},
    "number-hundred": "hundred",
    "number-thousand": "thousand",
    # Dates and times (sipum_protocol.media.say).
    **{f"ordinal-{n}": word for n, word in ORDINAL_WORDS.items()},
    **{f"weekday-{name}": name.capitalize() for name in WEEKDAYS},
    **{f"month-{name}": name.capitalize() for name in MONTHS},
    "today": "today",
    "yesterday": "yesterday",
    "at": "at",
    "oh": "oh",
    "am": "A M",
    "pm": "P M",
    # Caller side.
    "person-at": "The person at",
    "is-not-available": "is not available.",
    "leave-message": "Please leave a message after the tone.",
    "recording-too-short": "Your message was too short and was not recorded.",
    "mailbox-full": "The mailbox is full and cannot take any new messages.",
    # The caller's review after "#" ends the message (sipum_media_recorder.review).
    "review-message": (
        "To send your message, press 1. To listen to it, press 2. To record it again, press 3. "
        "To mark it urgent and send it, press 4."
    ),
    "review-message-no-urgent": (
        "To send your message, press 1. To listen to it, press 2. To record it again, press 3."
    ),
    "marked-urgent": "Marked urgent.",
    "message-sent": "Your message has been sent.",
    # 0 at the greeting or after the beep: the mailbox's operator (sipum_media_recorder.transfer).
    "transferring": "Please hold while your call is transferred.",
    "cannot-transfer": "The call cannot be transferred.",
    # The voicemail access number (sip:voicemail@domain): which mailbox?
    "enter-mailbox": "Please enter your mailbox number, followed by the pound key.",
    # Mailbox side.
    "you-have": "You have",
    "new-message": "new message.",
    "new-messages": "new messages.",
    "no-new-messages": "You have no new messages.",
    "message": "Message",
    "no-more-messages": "There are no more messages.",
    "enter-pin": "Please enter your PIN, followed by the pound key.",
    "wrong-pin": "Wrong PIN. Please try again.",
    "mailbox-locked": "This mailbox is locked after too many wrong PINs. Please try again later.",
    "menu-replay": "To replay the message, press 1.",
    "menu-delete": "To delete it, press 7.",
    "menu-save": "To save it, press 9.",
    "menu-end": "To end, press the pound key.",
    "message-deleted": "Message deleted.",
    "message-saved": "Message saved.",
    "goodbye": "Goodbye.",
    # The main menu (sip:alice-retrieve@…): counts, envelope, message menu.
    "no": "no",
    "and": "and",
    "count-new-message": "new message",
    "count-new-messages": "new messages",
    "count-urgent": "urgent,",
    "count-saved-message": "saved message.",
    "count-saved-messages": "saved messages.",
    "no-messages": "You have no messages.",
    "received": "Received",
    "envelope-urgent": "Urgent.",
    "forwarded-from": "Forwarded message from",
    "from": "from",
    "from-unknown": "from an unknown caller.",
    "message-menu": (
        "To repeat the message, press 5. For the next message, press 6. For the previous "
        "message, press 4. To delete it, press 7. To save it, press 9. To forward it, press 8. "
        "For mailbox options, press 0. To exit, press the pound key."
    ),
    "end-menu": (
        "To hear your messages again, press 1. For mailbox options, press 0. To exit, press "
        "the pound key."
    ),
    "options-menu": (
        "Mailbox options. To record your unavailable greeting, press 1. Your busy greeting, "
        "press 2. Your name, press 3. A temporary greeting, press 4. To change your PIN, "
        "press 5. To go back, press the star key."
    ),
    "record-greeting": "Please speak after the tone, and press the pound key when you are done.",
    "review-menu": (
        "To keep it, press 1. To listen to it, press 2. To record it again, press 3. To cancel, "
        "press the star key."
    ),
    "greeting-saved": "Your greeting has been saved.",
    "greeting-not-recorded": "Nothing was recorded.",
    "enter-new-pin": "Please enter your new PIN, followed by the pound key.",
    "reenter-new-pin": "Please enter the new PIN again, followed by the pound key.",
    "pins-differ": "The two PINs are not the same.",
    "pin-not-accepted": (
        "That PIN cannot be used. Use 4 to 12 digits, and nothing easy to guess like "
        "1 2 3 4, 1 1 1 1 or your number."
    ),
    "pin-changed": "Your PIN has been changed.",
    "first-message": "This is the first message.",
    "message-undeleted": "Message undeleted.",
    # Forwarding and pause (main menu keys 8 and 3).
    "forward-enter-mailbox": (
        "Please spell the name of the mailbox to forward to on the keypad, followed by the "
        "pound key. To cancel, press the star key."
    ),
    "forward-to": "Forward to",
    "forward-comment-menu": (
        "To record a comment first, press 1. To send it without a comment, press 2. To cancel, "
        "press the star key."
    ),
    "record-comment": (
        "Please speak your comment after the tone, and press the pound key when you are done."
    ),
    "message-forwarded": "Message forwarded.",
    "no-such-mailbox": "There is no such mailbox.",
    "mailbox-ambiguous": "More than one mailbox is spelled that way. Please forward it on the web.",
    "forward-mailbox-full": "That mailbox is full. The message was not forwarded.",
    "forward-failed": "The message could not be forwarded.",
    "message-paused": "Paused. To continue, press 3.",
}

#: Prompt names that are generated tones, not speech.
TONE_NAMES: tuple[str, ...] = ("beep",)

#: The language of :data:`PROMPT_TEXTS` (the default set, rendered in the cache directory
#: itself; every other language in ``<directory>/<language>/``).
DEFAULT_LANGUAGE = "en"

#: Prompts in other languages: language → {prompt name → text}. The caller-facing phrases of
#: the greeting and the review (and the digits they may say), the owner's main menu in part;
#: every prompt not listed here falls back, one by
#: one, to the default set. Machine translations spoken by espeak-ng: machine-voice quality, a
#: site wanting better records its own greetings.
PROMPT_TRANSLATIONS: dict[str, dict[str, str]] = {
    "de": {
        **{
            f"digit-{d}": word
            for d, word in enumerate(
                ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
                 "neun")
            )
        },
        "digit-star": "Stern",
        "digit-hash": "Raute",
        "person-at": "Der Teilnehmer unter",
        "is-not-available": "ist nicht erreichbar.",
        "leave-message": "Bitte hinterlassen Sie eine Nachricht nach dem Signalton.",
        "recording-too-short": "Ihre Nachricht war zu kurz und wurde nicht aufgezeichnet.",
        "mailbox-full": "Das Postfach ist voll und kann keine neuen Nachrichten annehmen.",
        "goodbye": "Auf Wiederhören.",
        # the caller's review after "#" (sipum_media_recorder.review)
        "review-message": (
            "Um Ihre Nachricht zu senden, drücken Sie 1. Zum Anhören drücken Sie 2. Um sie neu "
            "aufzunehmen, drücken Sie 3. Um sie als dringend zu markieren und zu senden, drücken "
            "Sie 4."
        ),
        "review-message-no-urgent": (
            "Um Ihre Nachricht zu senden, drücken Sie 1. Zum Anhören drücken Sie 2. Um sie neu "
            "aufzunehmen, drücken Sie 3."
        ),
        "marked-urgent": "Als dringend markiert.",
        "message-sent": "Ihre Nachricht wurde gesendet.",
        # the owner's main menu (words and sentences; numbers, dates and times keep the
        # English word order of sipum_protocol.media.say)
        **{
            f"number-{n}": word
            for n, word in enumerate(
                ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
                 "neun", "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn",
                 "siebzehn", "achtzehn", "neunzehn")
            )
        },
        **{
            f"number-{n}": word
            for n, word in {
                20: "zwanzig", 30: "dreißig", 40: "vierzig", 50: "fünfzig", 60: "sechzig",
                70: "siebzig", 80: "achtzig", 90: "neunzig",
            }.items()
        },
        "number-hundred": "hundert",
        "number-thousand": "tausend",
        **{
            f"weekday-{name}": word
            for name, word in zip(
                WEEKDAYS,
                ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
                strict=True,
            )
        },
        **{
            f"month-{name}": word
            for name, word in zip(
                MONTHS,
                ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                 "September", "Oktober", "November", "Dezember"),
                strict=True,
            )
        },
        "today": "heute",
        "yesterday": "gestern",
        "at": "um",
        "enter-pin": "Bitte geben Sie Ihre PIN ein, gefolgt von der Rautetaste.",
        "wrong-pin": "Falsche PIN. Bitte versuchen Sie es noch einmal.",
        "mailbox-locked": (
            "Dieses Postfach ist nach zu vielen falschen PINs gesperrt. Bitte versuchen Sie es "
            "später noch einmal."
        ),
        "menu-replay": "Um die Nachricht noch einmal zu hören, drücken Sie 1.",
        "menu-delete": "Zum Löschen drücken Sie 7.",
        "menu-save": "Zum Speichern drücken Sie 9.",
        "menu-end": "Zum Beenden drücken Sie die Rautetaste.",
        "message-deleted": "Nachricht gelöscht.",
        "message-saved": "Nachricht gespeichert.",
        "you-have": "Sie haben",
        "no": "keine",
        "and": "und",
        "count-new-message": "neue Nachricht",
        "count-new-messages": "neue Nachrichten",
        "count-urgent": "davon dringend,",
        "count-saved-message": "gespeicherte Nachricht.",
        "count-saved-messages": "gespeicherte Nachrichten.",
        "no-messages": "Sie haben keine Nachrichten.",
        "message": "Nachricht",
        "received": "Empfangen",
        "from": "von",
        "from-unknown": "von einem unbekannten Anrufer.",
        "envelope-urgent": "Dringend.",
        "forwarded-from": "Weitergeleitete Nachricht von",
        "no-more-messages": "Es gibt keine weiteren Nachrichten.",
        "first-message": "Dies ist die erste Nachricht.",
        "message-undeleted": "Nachricht wiederhergestellt.",
        "message-menu": (
            "Um die Nachricht zu wiederholen, drücken Sie 5. Für die nächste Nachricht drücken "
            "Sie 6. Für die vorige Nachricht drücken Sie 4. Zum Löschen drücken Sie 7. Zum "
            "Speichern drücken Sie 9. Zum Weiterleiten drücken Sie 8. Für die "
            "Postfachoptionen drücken Sie 0. Zum Beenden drücken Sie die Rautetaste."
        ),
        "end-menu": (
            "Um Ihre Nachrichten noch einmal zu hören, drücken Sie 1. Für die Postfachoptionen "
            "drücken Sie 0. Zum Beenden drücken Sie die Rautetaste."
        ),
        "message-forwarded": "Nachricht weitergeleitet.",
        "message-paused": "Angehalten. Zum Fortsetzen drücken Sie 3.",
    },
}  # fmt: skip

#: espeak-ng voice of each language's set.
LANGUAGE_VOICES: dict[str, str] = {DEFAULT_LANGUAGE: "en-us", "de": "de"}

#: Every language a prompt set exists for (the default first).
LANGUAGES: tuple[str, ...] = (DEFAULT_LANGUAGE, *PROMPT_TRANSLATIONS)


def prompt_language(tag: str | None) -> str:
    """The prompt set for a language tag (the setting ``prompt_language``): ``de-AT`` → ``de``;
    a language without a set, or None → the default."""
    if not tag:
        return DEFAULT_LANGUAGE
    parts = tag.strip().lower().replace("_", "-").split("-")
    for n in range(len(parts), 0, -1):
        candidate = "-".join(parts[:n])
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, kw_only=True)
class Voice:
    """espeak-ng parameters; part of every prompt's cache key."""

    name: str = "en-us"
    #: words per minute (espeak-ng ``-s``)
    speed: int = 150
    #: 0–99 (espeak-ng ``-p``)
    pitch: int = 50
    #: 0–200 (espeak-ng ``-a``)
    amplitude: int = 100
    #: peak level after normalisation, dBFS (sox ``gain -n``)
    peak_dbfs: float = -3.0


@dataclass(frozen=True, kw_only=True)
class Beep:
    """The tone before recording starts (pure code, no espeak)."""

    frequency: float = 1000.0
    duration: float = 0.4
    level_dbfs: float = -6.0
    #: raised-cosine fade in/out, so the tone starts and stops without a click
    ramp: float = 0.005


class PromptError(RuntimeError):
    """A prompt could not be rendered (espeak-ng or sox missing or failing, bad text)."""


def tool_versions() -> str:
    """The espeak-ng and sox version lines; part of the cache key."""
    lines = []
    for cmd in (["espeak-ng", "--version"], ["sox", "--version"]):
        if shutil.which(cmd[0]) is None:
            raise PromptError(f"{cmd[0]} is not installed (Debian packages espeak-ng and sox)")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10)
        # Drop espeak-ng's "Data at: <path>": the path is not part of the voice.
        lines.append(out.stdout.split("Data at:")[0].strip())
    return "\n".join(lines)


def _cache_key(*parts: object) -> str:
    digest = hashlib.sha256(repr((RENDER_VERSION, *parts)).encode()).hexdigest()
    return digest[:16]


def number_words(n: int) -> list[str]:
    """Prompt names speaking the count *n* ("number-20", "number-1" for 21).

    0–999 are spoken as words; larger numbers digit by digit (a voicemail count never gets there).
    """
    if n < 0:
        raise ValueError("counts are not negative")
    if n >= 1000:
        return digit_prompts(str(n))
    names: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        names += [f"number-{hundreds}", "number-hundred"]
        if rest == 0:
            return names
    if rest < 20:
        if rest or not names:
            names.append(f"number-{rest}")
    else:
        tens, ones = divmod(rest, 10)
        names.append(f"number-{tens * 10}")
        if ones:
            names.append(f"number-{ones}")
    return names


def digit_prompts(digits: str) -> list[str]:
    """Prompt names speaking *digits* one by one; characters other than 0-9, * and # are skipped
    (so "+1 (212) 555" reads as its digits)."""
    names = []
    for ch in digits:
        if ch.isdigit() and ch.isascii():
            names.append(f"digit-{ch}")
        elif ch == "*":
            names.append("digit-star")
        elif ch == "#":
            names.append("digit-hash")
    return names


def tone_pcm(beep: Beep, rate: int) -> np.ndarray:
    """The beep as int16 samples at *rate* (deterministic: no randomness, fixed rounding)."""
    n = round(beep.duration * rate)
    t = np.arange(n, dtype=np.float64) / rate
    amplitude = 32767.0 * 10 ** (beep.level_dbfs / 20)
    signal = amplitude * np.sin(2 * math.pi * beep.frequency * t)
    ramp_n = min(round(beep.ramp * rate), n // 2)
    if ramp_n:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_n) / ramp_n)
        signal[:ramp_n] *= ramp
        signal[n - ramp_n :] *= ramp[::-1]
    return np.round(signal).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Write int16 mono *pcm* as a canonical 44-byte-header WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _render_speech(text: str, voice: Voice, rates: Sequence[int], targets: Sequence[Path]) -> None:
    if not text.strip():
        raise PromptError("empty prompt text")
    with tempfile.TemporaryDirectory(prefix="sipum-prompt-") as tmp:
        raw = Path(tmp) / "speech.wav"
        cmd = [
            "espeak-ng",
            "-v",
            voice.name,
            "-s",
            str(voice.speed),
            "-p",
            str(voice.pitch),
            "-a",
            str(voice.amplitude),
            "--stdin",
            "-w",
            str(raw),
        ]
        # Text goes through stdin, never argv: a name like "-v xx" must not become an option.
        proc = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=30)
        if proc.returncode != 0 or not raw.exists():
            raise PromptError(f"espeak-ng failed: {proc.stderr.decode(errors='replace')}")
        for rate, target in zip(rates, targets, strict=True):
            tmp_target = _atomic_target(target)
            # -D: no dither (it is random); -R: repeatable mode. gain -n normalises the peak.
            sox = [
                "sox",
                "-D",
                "-R",
                str(raw),
                "-b",
                "16",
                "-c",
                "1",
                "-t",
                "wav",
                str(tmp_target),
                "gain",
                "-n",
                str(voice.peak_dbfs),
                "rate",
                "-v",
                str(rate),
            ]
            proc = subprocess.run(sox, capture_output=True, timeout=30)
            if proc.returncode != 0:
                tmp_target.unlink(missing_ok=True)
                raise PromptError(f"sox failed: {proc.stderr.decode(errors='replace')}")
            os.replace(tmp_target, target)


class PromptLibrary:
    """The rendered prompts in one cache directory.

    ``path(name, rate)`` gives a prompt's WAV file; sequences (greetings, counts, menus) are lists
    of such paths.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        rates: Sequence[int] = DEFAULT_RATES,
        voice: Voice | None = None,
        beep: Beep | None = None,
        texts: dict[str, str] | None = None,
        fallback: PromptLibrary | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.rates = tuple(rates)
        self.voice = voice or Voice()
        self.beep = beep or Beep()
        self.texts = dict(PROMPT_TEXTS if texts is None else texts)
        self.fallback = fallback
        """Where a prompt not in ``texts`` (and the tones) comes from: another language's set
        falls back to the default one, phrase by phrase."""
        self._tools: str = tool_versions() if fallback is None else fallback._tools

    @classmethod
    def for_language(cls, default: PromptLibrary, language: str) -> PromptLibrary:
        """The set of ``language`` (one of :data:`LANGUAGES`) in ``<default's directory>/
        <language>``: its translated phrases in its voice, the rest from ``default``."""
        if language == DEFAULT_LANGUAGE:
            return default
        return cls(
            default.directory / language,
            rates=default.rates,
            voice=Voice(name=LANGUAGE_VOICES[language]),
            beep=default.beep,
            texts=PROMPT_TRANSLATIONS[language],
            fallback=default,
        )

    # -- file names -------------------------------------------------------------------------------

    def _speech_path(self, name: str, text: str, rate: int) -> Path:
        key = _cache_key(text, self.voice, self._tools, rate)
        return self.directory / str(rate) / f"{name}-{key}.wav"

    def _tone_path(self, name: str, rate: int) -> Path:
        key = _cache_key(name, self.beep, rate)
        return self.directory / str(rate) / f"{name}-{key}.wav"

    def path(self, name: str, rate: int) -> Path:
        """The WAV file of prompt *name* at *rate* (rendered if missing)."""
        if rate not in self.rates:
            raise KeyError(f"prompts are not rendered at {rate} Hz (have {self.rates})")
        if self.fallback is not None and (name in TONE_NAMES or name not in self.texts):
            return self.fallback.path(name, rate)
        if name in TONE_NAMES:
            target = self._tone_path(name, rate)
            if not target.exists():
                self._render_tone(name, rate)
            return target
        try:
            text = self.texts[name]
        except KeyError:
            raise KeyError(f"no prompt named {name!r}") from None
        target = self._speech_path(name, text, rate)
        if not target.exists():
            self._render(name, text)
        return target

    def paths(self, names: Iterable[str], rate: int) -> list[Path]:
        return [self.path(name, rate) for name in names]

    # -- rendering --------------------------------------------------------------------------------

    def _render(self, name: str, text: str) -> None:
        targets = [self._speech_path(name, text, rate) for rate in self.rates]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        _render_speech(text, self.voice, self.rates, targets)

    def _render_tone(self, name: str, rate: int) -> None:
        target = self._tone_path(name, rate)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _atomic_target(target)
        write_wav(tmp, tone_pcm(self.beep, rate), rate)
        os.replace(tmp, target)

    def ensure_all(self, *, workers: int = 2) -> list[Path]:
        """Render every missing prompt; returns all prompt files (every name, every rate)."""
        missing = [
            (name, text)
            for name, text in self.texts.items()
            if not all(self._speech_path(name, text, r).exists() for r in self.rates)
        ]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda item: self._render(*item), missing))
        files = []
        for rate in self.rates:
            files += [self.path(name, rate) for name in self.texts]
            if self.fallback is None:
                files += [self.path(name, rate) for name in TONE_NAMES]
        return files

    def spoken(self, text: str, rate: int) -> Path:
        """Free text (a user's display name) rendered with the prompt voice, cached by hash."""
        clean = " ".join("".join(ch for ch in text if ch.isprintable()).split())[:100]
        if not clean:
            raise PromptError("nothing to speak")
        name = "text-" + hashlib.sha256(clean.encode()).hexdigest()[:12]
        target = self._speech_path(name, clean, rate)
        if not target.exists():
            for r in self.rates:
                self._speech_path(name, clean, r).parent.mkdir(parents=True, exist_ok=True)
            _render_speech(
                clean,
                self.voice,
                self.rates,
                [self._speech_path(name, clean, r) for r in self.rates],
            )
        return target

    def remove_stale(self) -> int:
        """Delete cached files that no current prompt maps to (old texts, old espeak-ng).

        Spoken names (``text-*``) are kept. Returns how many files were removed.
        """
        keep = {p.resolve() for p in self.ensure_all()}
        removed = 0
        for rate in self.rates:
            for file in (self.directory / str(rate)).glob("*.wav"):
                if file.name.startswith("text-") or file.resolve() in keep:
                    continue
                file.unlink()
                removed += 1
        return removed

    # -- sequences --------------------------------------------------------------------------------

    def unavailable_greeting(
        self, *, rate: int, name: str | None = None, number: str | None = None
    ) -> list[Path]:
        """ "The person at <name | digits> is not available. Please leave a message after the tone."
        + beep. With neither name nor number: "Please leave a message after the tone" + beep."""
        return self.prompt_sequence_for("unavailable", rate=rate, name=name, number=number)

    def prompt_sequence_for(
        self,
        what: str,
        *,
        rate: int,
        name: str | None = None,
        number: str | None = None,
        count: int | None = None,
    ) -> list[Path]:
        """The prompt files for a situation.

        *what*: ``unavailable`` (greeting + beep, with *name* or *number*), ``new_messages``
        ("You have <count> new messages" / "You have no new messages"), ``menu`` (replay / delete
        / save / end), or any single prompt name.
        """
        if what == "unavailable":
            out: list[Path] = []
            who: list[Path] = []
            if name and name.strip():
                who = [self.spoken(name, rate)]
            elif number and digit_prompts(number):
                who = self.paths(digit_prompts(number), rate)
            if who:
                out = [self.path("person-at", rate), *who, self.path("is-not-available", rate)]
            return [*out, self.path("leave-message", rate), self.path("beep", rate)]
        if what == "new_messages":
            if count is None:
                raise ValueError("new_messages needs count")
            if count == 0:
                return [self.path("no-new-messages", rate)]
            noun = "new-message" if count == 1 else "new-messages"
            return self.paths(["you-have", *number_words(count), noun], rate)
        if what == "menu":
            return self.paths(["menu-replay", "menu-delete", "menu-save", "menu-end"], rate)
        return [self.path(what, rate)]


def ensure_prompts(
    directory: Path | str, *, rates: Sequence[int] = DEFAULT_RATES, voice: Voice | None = None
) -> PromptLibrary:
    """Render every missing default prompt into *directory*; returns the library."""
    library = PromptLibrary(directory, rates=rates, voice=voice)
    library.ensure_all()
    return library


def language_sets(default: PromptLibrary) -> dict[str, PromptLibrary]:
    """Every language's set over ``default`` (the default's own entry is ``default``)."""
    return {language: PromptLibrary.for_language(default, language) for language in LANGUAGES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Render sipum's default system prompts (espeak-ng + sox) into a cache directory."
    )
    parser.add_argument("directory", help="cache directory (created if missing)")
    parser.add_argument(
        "--rate",
        type=int,
        action="append",
        help="sample rate to render (repeatable; default 8000 and 16000)",
    )
    parser.add_argument("--prune", action="store_true", help="delete files of outdated prompts")
    parser.add_argument(
        "--language",
        action="append",
        choices=LANGUAGES,
        help=f"prompt set to render besides the default (repeatable; default: all of "
        f"{', '.join(LANGUAGES)})",
    )
    args = parser.parse_args(argv)
    wanted = {DEFAULT_LANGUAGE, *(args.language or LANGUAGES)}
    try:
        library = PromptLibrary(args.directory, rates=tuple(args.rate or DEFAULT_RATES))
        files = []
        removed = 0
        for language, lang_library in language_sets(library).items():
            if language in wanted:
                files += lang_library.ensure_all()
                removed += lang_library.remove_stale() if args.prune else 0
    except PromptError as exc:
        print(f"generate prompts: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(files)} prompt files in {args.directory} ({', '.join(sorted(wanted))}; "
        f"{removed} stale removed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
