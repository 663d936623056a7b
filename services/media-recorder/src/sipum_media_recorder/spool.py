"""A recording in progress, kept in the blob store so a crash loses at most the last chunk.

Why the blob store and not a local file: a replica's disk may go with its container, and the
replica that crashed may never come back; any replica can read the blob store. Layout (keys from
``sipum.blobstore.keys.partial_recording_key``)::

    partial/<session_id>.json           manifest: who, from whom, codec, allocated message id
    partial/<session_id>-00000.pcm      chunk 0: 16-bit little-endian mono PCM
    partial/<session_id>-00001.pcm      ...

The manifest is written when recording starts, each chunk the recording engine hands out
(``sipum_protocol.media.recording``: at least every ``chunk_seconds``) is uploaded in order by one
background task per session; chunks that queued up behind a slow put are joined into the next
blob (so the blobs are "what was queued", not one per engine chunk). When the message is stored, the manifest is deleted first (it is
what recovery looks for), then the chunks. :func:`find_interrupted` lists the recordings a
crashed process left behind; :func:`load_interrupted` joins their chunks.

A call moved to another replica (``MediaAllocateRequest.continue_session_id``) keeps the session
id: :func:`load_for_continue` reads the gone replica's manifest and chunk listing (the chunks
themselves are fetched in the background, :class:`Spooled`, while the call records on), the
new replica rewrites the
manifest with its own ``recorder_id`` (from then on the recording is a live one of a live
replica: recovery leaves it alone) and uploads its chunks from the next *part* on — index
``10000 * part`` — so the keys still sort in the order of the audio and a replica that was only
taken for gone cannot overwrite them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sipum.blobstore import BlobNotFoundError, BlobStore, partial_recording_key
from sipum_protocol.media.recording import RecordingChunk

from sipum_media_recorder import metrics

log = logging.getLogger("sipum.misc.recorder.spool")

PARTIAL_PREFIX = "partial/"


@dataclass
class RecordingMeta:
    """Everything needed to store a message without the call that made it (the manifest)."""

    session_id: str
    recorder_id: str
    owner_id: int
    username: str
    domain: str
    caller_uri: str
    caller_display: str | None
    called_uri: str
    reason: str
    diversion_cause: str | None
    call_id: str
    codec: str
    sample_rate: int
    received_at: str
    """ISO time the recording started (the message's ``received_at``)."""
    message_id: int | None = None
    """Allocated before the message blob is written, so a retry reuses the same blob key."""
    ended: str | None = None
    """The end reason, when the recording ended normally and only storing it failed (then the
    recovered message is not ``interrupted``); None while the call is going on."""
    urgent: bool = False
    """The caller pressed 4 (urgent) in the review: the manifest is rewritten before storing,
    so a message recovered after a crash keeps the mark."""
    forwarded_from: str | None = None
    """A forwarded copy (main menu key 8): the mailbox (``username@domain``) it came from."""
    lost_seconds: float = 0.0
    """Audio lost while the call moved from a replica that died to another one (wall time
    since ``received_at`` minus the audio spooled when the new replica took over): more than
    ``LOST_AUDIO_SECONDS`` flags the message ``interrupted``."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RecordingMeta:
        values = json.loads(data)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def received_datetime(self) -> datetime:
        return datetime.fromisoformat(self.received_at)


LOST_AUDIO_SECONDS = 0.2
"""A continued recording missing more than this (20 ms packets, the jitter of two clocks) lost
audio: it is flagged ``interrupted``."""
CONTINUE_FETCHES = 8
"""Chunks fetched at once when a moved call's recording is taken over."""
PART_SIZE = 10000
"""Chunk indexes per part of a recording (one part per replica that recorded it)."""


def manifest_key(session_id: str) -> str:
    return partial_recording_key(session_id, "json")


def chunk_key(session_id: str, index: int) -> str:
    return partial_recording_key(f"{session_id}-{index:05d}", "pcm")


@dataclass
class PartialRecording:
    """Uploads one session's manifest and chunks in order, in the background."""

    blobs: BlobStore
    meta: RecordingMeta
    pcm: list[bytes] = field(default_factory=list)
    """Every chunk's audio, also kept in memory: the final WAV does not wait for uploads."""
    uploaded: int = 0
    failures: int = 0
    first_index: int = 0
    """Index of the first chunk this spool writes (``PART_SIZE * part`` for a continued one)."""
    before: Spooled | None = None
    """A gone replica's audio still being fetched: goes in front of ``pcm`` (``join_before``)."""

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[RecordingChunk | None] = asyncio.Queue()
        self._discard = False
        self._task = asyncio.create_task(self._upload(), name=f"spool-{self.meta.session_id}")

    def add(self, chunk: RecordingChunk) -> None:
        """``on_chunk`` callback of the recording (runs in the receive path: only queues)."""
        if chunk.pcm:
            self.pcm.append(chunk.pcm)
            self._queue.put_nowait(chunk)

    async def join_before(self) -> bytes:
        """Wait for the gone replica's audio and put it in front of ours; returns it (empty
        when there is none). Raises when its fetch failed for good: then nothing is joined
        and the chunks are still in the blob store for recovery."""
        if self.before is None:
            return b""
        pcm = await self.before.audio()
        self.before = None
        if pcm:
            self.pcm.insert(0, pcm)
        return pcm

    async def write_manifest(self) -> None:
        await self.blobs.put(
            manifest_key(self.meta.session_id),
            self.meta.to_json(),
            content_type="application/json",
        )

    async def _try_manifest(self) -> bool:
        try:
            await self.write_manifest()
        except Exception:
            # The call goes on; only crash safety is lost meanwhile. Tried again before the
            # next chunk: chunks without a manifest would be taken for clean-up leftovers.
            self.failures += 1
            metrics.SPOOL_FAILURES.inc()
            log.exception("cannot write the manifest of %s", self.meta.session_id)
            return False
        return True

    async def _upload(self) -> None:
        manifest = await self._try_manifest()
        index = self.first_index
        carry: list[bytes] = []  # audio of a put that failed: retried with the next one
        while True:
            chunk = await self._queue.get()
            if chunk is None or self._discard:
                return
            # A store slower than the chunks come (or a slow put) must not let a backlog grow:
            # whatever queued up meanwhile goes in the same blob, so what a crash loses stays
            # about one put's time, however many chunks that is.
            parts = [*carry, chunk.pcm]
            last = False
            while not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    last = True
                    break
                parts.append(more.pcm)
            if self._discard:
                return
            if not manifest:
                manifest = await self._try_manifest()
            try:
                await self.blobs.put(chunk_key(self.meta.session_id, index), b"".join(parts))
            except Exception:
                # Keep the audio for the next put under the same index: a recovered recording
                # must not have a hole in the middle (the call goes on meanwhile).
                self.failures += 1
                metrics.SPOOL_FAILURES.inc()
                log.exception("cannot upload chunk %d of %s", index, self.meta.session_id)
                carry = parts
                if last:
                    return
                continue
            carry = []
            self.uploaded += len(parts)
            index += 1
            if last:
                return

    async def finish(self, *, upload_rest: bool = False) -> None:
        """Stop the uploader: by default what is still queued is dropped (the caller is about to
        store the whole message); ``upload_rest`` writes it first."""
        self._discard = not upload_rest
        self._queue.put_nowait(None)
        await asyncio.shield(self._task)

    async def remove(self) -> None:
        """Delete manifest and chunks (after the message is stored, or when discarded)."""
        await self.finish()
        if self.before is not None:
            self.before.cancel()
        await remove_partial(self.blobs, self.meta.session_id)

    def abandon(self) -> None:
        """The task was cancelled (process stopping hard): leave everything for recovery."""
        self._task.cancel()
        if self.before is not None:
            self.before.cancel()


async def remove_partial(blobs: BlobStore, session_id: str) -> None:
    await blobs.delete(manifest_key(session_id))
    for key in await blobs.list_keys(f"{PARTIAL_PREFIX}{session_id}-"):
        await blobs.delete(key)


@dataclass(frozen=True)
class Interrupted:
    """A recording some process started and never finished."""

    session_id: str
    meta: RecordingMeta
    chunk_keys: list[str]
    last_write: float
    """Unix time of the newest of its blobs."""


async def find_interrupted(blobs: BlobStore) -> tuple[list[Interrupted], list[str]]:
    """Recordings left in ``partial/`` (with a readable manifest), and orphan chunk keys
    (chunks whose manifest is gone: a store that crashed after deleting it)."""
    keys = await blobs.list_keys(PARTIAL_PREFIX)
    manifests = {k[len(PARTIAL_PREFIX) : -len(".json")]: k for k in keys if k.endswith(".json")}
    chunks: dict[str, list[str]] = {}
    for key in keys:
        if key.endswith(".pcm"):
            session_id = key[len(PARTIAL_PREFIX) :].rsplit("-", 1)[0]
            chunks.setdefault(session_id, []).append(key)
    found: list[Interrupted] = []
    for session_id, key in manifests.items():
        try:
            meta = RecordingMeta.from_json(await blobs.get(key))
            newest = (await blobs.stat(key)).modified.timestamp()
            for chunk in chunks.get(session_id, []):
                with contextlib.suppress(BlobNotFoundError):
                    newest = max(newest, (await blobs.stat(chunk)).modified.timestamp())
        except BlobNotFoundError:
            continue  # finished while we were looking
        except (ValueError, TypeError) as exc:
            log.error("unreadable recording manifest %s: %s", key, exc)
            continue
        found.append(Interrupted(session_id, meta, sorted(chunks.get(session_id, [])), newest))
    orphans = [k for sid, ks in chunks.items() if sid not in manifests for k in ks]
    return found, orphans


async def load_interrupted(blobs: BlobStore, interrupted: Interrupted) -> bytes:
    """The PCM of an interrupted recording: its chunks joined in order."""
    parts = []
    for key in interrupted.chunk_keys:
        with contextlib.suppress(BlobNotFoundError):
            parts.append(await blobs.get(key))
    pcm = b"".join(parts)
    return pcm[: len(pcm) - len(pcm) % 2]


CONTINUE_FETCH_RETRIES = 5
"""Tries per chunk of a continued recording before its fetch gives up (the store is away)."""


class Spooled:
    """What a gone replica spooled of a session, read to continue it (``load_for_continue``).

    Only the manifest and the chunk listing (with sizes) are read before the continue is
    answered; the chunks themselves are fetched in the background while the new part is
    already being recorded (:meth:`audio` waits for them). The chunks stay in the blob store
    until the message is stored, so a crash of the continuing replica loses none of them."""

    def __init__(
        self,
        meta: RecordingMeta,
        next_index: int,
        seconds: float,
        fetch: asyncio.Future[bytes],
    ) -> None:
        self.meta = meta
        self.next_index = next_index
        """First chunk index of the next part."""
        self.seconds = seconds
        """Audio spooled, from the listed sizes (exact: what the fetch will return)."""
        self._fetch = fetch
        self.taken_over: asyncio.Future[Any] | None = None
        """The continuing replica's rewrite of the manifest (its session waits for it: a
        late rewrite must not bring back a manifest the store has deleted)."""

    @property
    def fetched(self) -> bool:
        return self._fetch.done()

    async def audio(self) -> bytes:
        """The spooled PCM, joined in order; raises if the fetch failed for good (then what is
        spooled stays for recovery)."""
        return await asyncio.shield(self._fetch)

    def cancel(self) -> None:
        """The session is over without needing the audio (or is being killed)."""
        if not self._fetch.done():
            self._fetch.cancel()
        elif not self._fetch.cancelled():
            self._fetch.exception()  # retrieved: no "never retrieved" warning


async def _fetch_chunks(blobs: BlobStore, keys: list[str], session_id: str) -> bytes:
    # fetched side by side, a few at a time, each retried with back-off while the store is away
    limit = asyncio.Semaphore(CONTINUE_FETCHES)

    async def fetch(key: str) -> bytes:
        async with limit:
            for attempt in range(CONTINUE_FETCH_RETRIES):
                try:
                    return await blobs.get(key)
                except BlobNotFoundError:
                    return b""  # as recovery does: a chunk gone is skipped
                except Exception:
                    if attempt == CONTINUE_FETCH_RETRIES - 1:
                        raise
                    log.warning("cannot fetch %s of %s (try %d)", key, session_id, attempt + 1)
                    await asyncio.sleep(0.2 * 2**attempt)
            raise AssertionError("unreachable")

    parts = await asyncio.gather(*(fetch(key) for key in keys))
    pcm = b"".join(parts)
    return pcm[: len(pcm) - len(pcm) % 2]


async def load_for_continue(blobs: BlobStore, session_id: str) -> Spooled | None:
    """The manifest and the chunk listing of ``session_id`` (the chunks' fetch started in the
    background); None when nothing is spooled."""
    # the manifest and the chunk listing side by side (one round trip for the caller, who
    # waits for this: the move's re-INVITE follows our reply)
    listing = asyncio.ensure_future(blobs.list_sizes(f"{PARTIAL_PREFIX}{session_id}-"))
    try:
        meta = RecordingMeta.from_json(await blobs.get(manifest_key(session_id)))
    except BaseException as exc:
        listing.cancel()
        with contextlib.suppress(BaseException):
            await listing
        if isinstance(exc, BlobNotFoundError):
            return None
        raise
    sizes = await listing
    keys = sorted(k for k in sizes if k.endswith(".pcm"))
    last = -1
    for key in keys:
        suffix = key[len(PARTIAL_PREFIX) + len(session_id) + 1 :].split(".", 1)[0]
        if suffix.isdigit():
            last = max(last, int(suffix))
    next_part = last // PART_SIZE + 1 if last >= 0 else 1
    total = sum(sizes[k] for k in keys)
    seconds = (total - total % 2) / 2 / meta.sample_rate
    fetch = asyncio.ensure_future(_fetch_chunks(blobs, keys, session_id))
    return Spooled(meta, next_part * PART_SIZE, seconds, fetch)


def is_stale(interrupted: Interrupted, *, grace: float, now: float | None = None) -> bool:
    return (now if now is not None else time.time()) - interrupted.last_write >= grace
