"""Sample-rate conversion by a rational factor with a windowed-sinc anti-alias filter.

``resample(pcm, from_rate, to_rate)`` converts a whole buffer; ``Resampler`` does the
same incrementally for a stream (feed chunks of any size, get the samples that are
ready; ``flush()`` at the end). Both give identical output for the same input.

Theory: to convert by L/M (reduced), conceptually insert L-1 zeros between input
samples, low-pass at min(π/L, π/M) to remove images (up) and aliases (down), keep every
M-th sample. The filter is a Kaiser-windowed sinc with ``zero_crossings`` lobes on each
side of the narrower band. We never build the zero-stuffed signal: output sample m sits
at upsampled index n = m·M + D (D = filter delay, so output and input stay aligned in
time) and only the filter taps h[n - i·L] that hit real input samples i contribute —
the polyphase decomposition. Outputs sharing a phase (n mod L) form a plain convolution
of the input with that phase's taps, sampled with stride M: numpy's convolve does the
work when M is small, dot products over sliding windows (only the kept outputs) when M
is large (22050 → 8000 Hz keeps one convolution output in 441).
"""

from __future__ import annotations

from math import gcd

import numpy as np

from .base import Pcm, as_pcm


def _design_filter(up: int, down: int, zero_crossings: int, beta: float) -> np.ndarray:
    """Polyphase taps, shape (up, taps_per_phase), for the upsampled-rate low-pass."""
    factor = max(up, down)
    half = zero_crossings * factor
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 0.95 / factor  # fraction of the upsampled Nyquist, a little under the band edge
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(len(n), beta) * up
    length = -(-len(taps) // up) * up
    padded = np.zeros(length)
    padded[: len(taps)] = taps
    # phase p holds h[p], h[p+L], h[p+2L], ... (index j multiplies input sample i0 - j)
    return padded.reshape(-1, up).T.copy()


class Resampler:
    """Streaming rational resampler for int16 mono PCM (one per stream)."""

    def __init__(
        self, from_rate: int, to_rate: int, *, zero_crossings: int = 16, beta: float = 8.0
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(from_rate, to_rate)
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.up = to_rate // g
        self.down = from_rate // g
        self._phases = _design_filter(self.up, self.down, zero_crossings, beta)
        self._taps = self._phases.shape[1]
        self._delay = zero_crossings * max(self.up, self.down)  # centre tap, upsampled index
        # History holds input samples from absolute index self._start on; zeros before 0.
        self._history = np.zeros(self._taps - 1, dtype=np.float64)
        self._start = -(self._taps - 1)
        self._received = 0  # real input samples received so far
        self._next_out = 0  # absolute index of the next output sample

    def _produce(self, available: int) -> Pcm:
        """Outputs whose filter window ends at input index < ``available``."""
        up, down = self.up, self.down
        # last output m with i0(m) = (m*down + delay) // up <= available - 1
        last = ((available - 1) * up + up - 1 - self._delay) // down
        count = last - self._next_out + 1
        if count <= 0:
            return np.zeros(0, dtype=np.int16)
        out = np.empty(count, dtype=np.float64)
        taps = self._taps
        windows = None
        for r in range(min(up, count)):
            m0 = self._next_out + r
            n0 = m0 * down + self._delay
            phase, i0 = n0 % up, n0 // up
            # output k of this phase = sum_j h[j] * history[i0 + k*down - j - start]
            first = i0 - self._start
            wanted = len(out[r::up])
            if down <= 8:
                # most convolution outputs are used: numpy's convolve is the fastest way
                conv = np.convolve(self._history, self._phases[phase])
                out[r::up] = conv[first : first + (wanted - 1) * down + 1 : down]
                continue
            # decimating: compute only the outputs kept, as dot products over windows
            if windows is None:
                windows = np.lib.stride_tricks.sliding_window_view(self._history, taps)
            reversed_taps = self._phases[phase][::-1]
            rows = first - (taps - 1) + down * np.arange(wanted)
            result = np.empty(wanted)
            for c in range(0, wanted, 16384):  # bounded temporary (rows x taps)
                result[c : c + 16384] = windows[rows[c : c + 16384]] @ reversed_taps
            out[r::up] = result
        self._next_out += count
        # keep what the next output's window needs
        n_next = self._next_out * down + self._delay
        keep_from = n_next // up - (self._taps - 1)
        if keep_from > self._start:
            self._history = self._history[keep_from - self._start :]
            self._start = keep_from
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def process(self, pcm: Pcm | bytes) -> Pcm:
        """Feed a chunk; returns the output samples that are complete."""
        samples = as_pcm(pcm)
        if self.up == self.down:
            return samples.copy()
        self._history = np.concatenate([self._history, samples.astype(np.float64)])
        self._received += len(samples)
        return self._produce(self._received)

    def flush(self) -> Pcm:
        """End of stream: the remaining outputs (input padded with zeros), so that the total
        output length is round(input_length * to_rate / from_rate)."""
        if self.up == self.down:
            return np.zeros(0, dtype=np.int16)
        total = (self._received * self.up + self.down // 2) // self.down
        pad = np.zeros(self._taps + self._delay // self.up + 1, dtype=np.float64)
        self._history = np.concatenate([self._history, pad])
        out = self._produce(self._received + len(pad))
        keep = total - (self._next_out - len(out))
        return out[: max(keep, 0)]


def resample(pcm: Pcm | bytes, from_rate: int, to_rate: int) -> Pcm:
    """Resample a whole buffer of int16 mono PCM from ``from_rate`` to ``to_rate``."""
    if from_rate == to_rate:
        return as_pcm(pcm).copy()
    resampler = Resampler(from_rate, to_rate)
    head = resampler.process(pcm)
    return np.concatenate([head, resampler.flush()])
