"""The default engine: CMU PocketSphinx 5 with the en-US model its wheel ships.

The model is trained on 16 kHz audio (``feat.params``: 25 filters from 130 to 6800 Hz), and
it insists on that filter bank, so telephone audio (8 kHz) is resampled to 16 kHz: the bands
above 4 kHz stay empty, which costs accuracy but works (measured in docs/transcriber.md). Words
come from the best path with their posterior probabilities (``bestpath``) as confidence.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

from sipum_protocol.media.codecs.resample import resample

from sipum_transcriber.engines import Transcript, UnsupportedLanguage, Word

MODEL_RATE = 16000
FRAMES_PER_SECOND = 100  # the front end's default -frate
# Alternative pronunciations are reported as "word(2)"; fillers as <s>, </s>, <sil>, [NOISE].
_ALTERNATIVE = re.compile(r"\(\d+\)$")


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+")) or not word


class PocketSphinxEngine:
    name = "pocketsphinx"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.version = importlib.metadata.version("pocketsphinx")
        # loglevel FATAL: the decoder otherwise logs every setting (and hypotheses) to stderr.
        # dither: a little noise on every sample; digital silence (log of zero energy) between
        # words otherwise derails it (WER 0.92 → 0.84 on the test clips, "dog" from silence).
        self._decoder: Any = Decoder(bestpath=True, dither=True, loglevel="FATAL")

    @staticmethod
    def supports(language: str) -> bool:
        return language.lower() in ("en", "en-us", "auto")

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        if not self.supports(language):
            raise UnsupportedLanguage(f"pocketsphinx has an en-US model only, not {language}")
        audio = (
            pcm if sample_rate == MODEL_RATE else resample(pcm, sample_rate, MODEL_RATE).tobytes()
        )
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        words: list[Word] = []
        if hypothesis is not None:
            for segment in decoder.seg():
                if _is_filler(segment.word):
                    continue
                words.append(
                    Word(
                        word=_ALTERNATIVE.sub("", segment.word),
                        start=segment.start_frame / FRAMES_PER_SECOND,
                        end=(segment.end_frame + 1) / FRAMES_PER_SECOND,
                        # a posterior; rounding in the log domain can give 1.0001
                        confidence=min(max(float(segment.prob), 0.0), 1.0),
                    )
                )
        confidence = sum(w.confidence or 0.0 for w in words) / len(words) if words else None
        return Transcript(
            text=" ".join(w.word for w in words),
            language="en-US",
            words=tuple(words),
            confidence=confidence,
        )
