"""Speech whose words are known, for testing and measuring transcription.

``render(text)`` speaks a sentence with Debian's ``espeak-ng`` and returns it as the
media-recorder stores a message: a 16-bit mono PCM WAV at 8 kHz (telephone band).
``word_error_rate(reference, hypothesis)`` is the usual WER: word-level edit distance
(substitutions + deletions + insertions) over the number of reference words.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave

from sipum_protocol.media.codecs.resample import resample

#: Short voicemail-like sentences (lower case, no punctuation: the form transcripts compare in).
SENTENCES: tuple[str, ...] = (
    "please call me back tomorrow morning",
    "i will be at the office until five",
    "the meeting has been moved to next week",
    "can you send me the report today",
    "thank you for calling have a nice day",
)

VOICE = "en-us"
WORDS_PER_MINUTE = 130


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def render(text: str, *, rate: int = 8000, voice: str = VOICE) -> bytes:
    """``text`` spoken by espeak-ng, as a PCM WAV at ``rate`` Hz."""
    spoken = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    with wave.open(io.BytesIO(spoken), "rb") as w:
        source_rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    return wav(resample(pcm, source_rate, rate).tobytes(), rate)


def wav(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation (``Don't!`` → ``don't``)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (one row of the table at a time)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hypothesis, start=1):
            diagonal, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, diagonal + (ref_word != hyp_word)),
            )
    return row[-1]


def word_error_rate(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """WER of one pair, or of a corpus when given lists of sentences (errors / words)."""
    refs = [reference] if isinstance(reference, str) else list(reference)
    hyps = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    if len(refs) != len(hyps):
        raise ValueError("as many hypotheses as references")
    errors = words = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        ref_words = normalize(ref)
        errors += edit_distance(ref_words, normalize(hyp))
        words += len(ref_words)
    if words == 0:
        raise ValueError("the reference has no words")
    return errors / words
