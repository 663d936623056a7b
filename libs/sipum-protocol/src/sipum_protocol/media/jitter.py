"""A bounded reordering jitter buffer for one RTP stream (sans-I/O, clocked by ``now``).

Theory of operation
-------------------
Packets go in with their arrival time; they come out in sequence-number order, each
exactly once. The buffer keeps ``next`` — the extended sequence number it will release
next — and holds every packet that arrives ahead of it:

- a packet equal to ``next`` is released at once, together with every held packet
  that follows contiguously;
- a packet ahead of ``next`` waits for the missing ones, but not for ever: once the
  oldest waiting packet has been held ``max_delay`` seconds (``poll(now)``), or more
  than ``capacity`` packets wait, the buffer gives up on the gap, counts the missing
  sequence numbers as ``skipped`` and releases what it has;
- a packet behind ``next`` comes too late: it is dropped and counted as ``late`` —
  or as ``duplicate`` if that sequence number was released recently (within the
  ``capacity`` + 64 numbers before ``next``); a second copy of a held packet is a
  ``duplicate`` too. Released numbers are not stored one by one: everything from the
  stream's first number up to ``next`` was released except the gaps given up on, so the
  buffer remembers only those gaps (as ranges, the recent ones) — the in-order path then
  costs an increment.

Sequence numbers are 16 bit and wrap; the buffer works on extended (unwrapped) numbers
relative to ``next``, so the wrap from 65535 to 0 is invisible (RFC 3550 A.1). A jump
of the sender's sequence (a restart) is the receiver's business: it calls ``flush()``
then ``reset()`` (see ``sipum_protocol.media.receiver``).

The buffer orders by sequence, never by timestamp, so timestamp jumps (silence
suppression, a sender restarting its clock) pass through untouched.

API: ``push(packet, now) -> list[RtpPacket]``, ``poll(now) -> list[RtpPacket]``,
``next_deadline() -> float | None`` (when ``poll`` would release something),
``flush() -> list[RtpPacket]`` (everything held, in order, skipping gaps), ``reset()``,
``expected`` and ``advance(count)`` (the in-order fast path, no packet object needed);
counters ``released``, ``late``, ``duplicates``, ``skipped``, ``overflows``.
"""

from __future__ import annotations

from collections import deque

from .rtp import RtpPacket, seq_diff


class JitterBuffer:
    """Reorders one stream's packets by sequence number within bounded delay and size."""

    def __init__(self, *, capacity: int = 50, max_delay: float = 0.1) -> None:
        if capacity < 1:
            raise ValueError("jitter buffer capacity must be at least one packet")
        if max_delay < 0:
            raise ValueError("jitter buffer delay must not be negative")
        self.capacity = capacity
        """Most packets held while waiting for a missing one."""
        self.max_delay = max_delay
        """Longest time (s) a packet is held waiting for a missing predecessor."""
        self.released = 0
        self.late = 0
        self.duplicates = 0
        self.skipped = 0
        """Sequence numbers given up on (never arrived in time)."""
        self.overflows = 0
        """Times a gap was skipped because more than ``capacity`` packets waited."""
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._next: int | None = None
        self._first = 0  # the stream's first extended number (nothing before it was released)
        self._window = capacity + 64  # how far back a released number counts as a duplicate
        self._gaps: deque[tuple[int, int]] = deque()  # recent skipped ranges [lo, hi)

    def __len__(self) -> int:
        return len(self._held)

    def reset(self) -> None:
        """Forget the stream position (after a flush, for a new source or a sequence jump)."""
        self._held.clear()
        self._next = None
        self._gaps.clear()

    def _extend(self, seq: int) -> int:
        assert self._next is not None
        return self._next + seq_diff(seq, self._next & 0xFFFF)

    def _was_released(self, ext: int) -> bool:
        """Was ``ext`` (behind ``next``, within the window) released? Yes unless it lies
        before the stream's start or in a gap that was given up on."""
        assert self._next is not None
        if ext < self._first or ext < self._next - self._window:
            return False
        return not any(lo <= ext < hi for lo, hi in self._gaps)

    def _drain(self, out: list[RtpPacket]) -> None:
        held = self._held
        nxt = self._next
        assert nxt is not None
        while nxt in held:
            out.append(held.pop(nxt)[0])
            nxt += 1
        self._next = nxt

    def _skip_to_oldest(self, out: list[RtpPacket]) -> None:
        assert self._next is not None
        oldest = min(self._held)
        self.skipped += oldest - self._next
        gaps = self._gaps
        gaps.append((self._next, oldest))
        while gaps and gaps[0][1] <= oldest - self._window:
            gaps.popleft()  # too old to matter for the duplicate check
        self._next = oldest
        self._drain(out)

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        """Add an arrived packet; returns the packets now ready, in order."""
        out: list[RtpPacket] = []
        if self._next is None:
            self._next = self._first = packet.sequence_number
        ext = self._extend(packet.sequence_number)
        if ext < self._next:
            if self._was_released(ext):
                self.duplicates += 1
            else:
                self.late += 1
            return out
        if ext in self._held:
            self.duplicates += 1
            return out
        self._held[ext] = (packet, now)
        self._drain(out)
        while len(self._held) > self.capacity:
            self.overflows += 1
            self._skip_to_oldest(out)
        self.released += len(out)
        return out

    def advance(self, count: int) -> None:
        """Account ``count`` packets that follow ``next`` in order as released (the caller
        checked their sequence numbers and that nothing is held: see ``expected``)."""
        assert not self._held and self._next is not None
        self._next += count
        self.released += count

    @property
    def expected(self) -> int | None:
        """The 16-bit sequence number released next if nothing is held, else ``None``."""
        if self._held or self._next is None:
            return None
        return self._next & 0xFFFF

    def next_deadline(self) -> float | None:
        """When the oldest waiting packet's wait runs out (``None`` if nothing waits)."""
        if not self._held:
            return None
        return min(arrival for _, arrival in self._held.values()) + self.max_delay

    def poll(self, now: float) -> list[RtpPacket]:
        """Give up on gaps whose waiting packets were held ``max_delay``; returns released."""
        out: list[RtpPacket] = []
        while self._held:
            deadline = self.next_deadline()
            assert deadline is not None
            if now < deadline:
                break
            self._skip_to_oldest(out)
        self.released += len(out)
        return out

    def flush(self) -> list[RtpPacket]:
        """Release everything held, in order, skipping gaps (end of stream)."""
        out: list[RtpPacket] = []
        while self._held:
            self._skip_to_oldest(out)
        self.released += len(out)
        return out
