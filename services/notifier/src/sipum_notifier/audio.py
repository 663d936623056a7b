"""The attachment's audio: the stored WAV as it is, or MP3 (lameenc, LAME's encoder).

A voicemail WAV is 16-bit mono PCM at 8 or 16 kHz (128 or 256 kbit/s); as MP3 at 24/32 kbit/s
it is about a fifth of that, which matters to mailboxes that cap attachments. The bit rates are
LAME's usual choice for speech at those sample rates (MPEG-2.5 at 8 kHz, MPEG-2 at 16 kHz).
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import lameenc

_BITRATE_KBPS = {8000: 24, 11025: 24, 12000: 24, 16000: 32, 22050: 48, 24000: 48}


class AudioFormatError(ValueError):
    """The stored blob is not the 16-bit PCM WAV the recorder writes."""


@dataclass(frozen=True, slots=True)
class Attachment:
    data: bytes
    subtype: str
    """MIME subtype under ``audio/``: ``wav`` or ``mpeg``."""
    extension: str


def wav_to_mp3(wav: bytes) -> bytes:
    try:
        with wave.open(io.BytesIO(wav)) as reader:
            channels, width, rate = (
                reader.getnchannels(),
                reader.getsampwidth(),
                reader.getframerate(),
            )
            pcm = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"not a WAV file: {exc}") from None
    if width != 2:
        raise AudioFormatError(f"{8 * width}-bit samples; only 16-bit PCM is encoded")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(_BITRATE_KBPS.get(rate, 64))
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(2)  # 2 = high quality, slower; a voicemail is short
    return bytes(encoder.encode(pcm) + encoder.flush())


def attachment(wav: bytes, audio_format: str) -> Attachment:
    if audio_format == "mp3":
        return Attachment(wav_to_mp3(wav), "mpeg", "mp3")
    return Attachment(wav, "wav", "wav")
