"""An engine in a child process of its own.

Why a process and not a thread: decoding is seconds of CPU in C code that may hold the GIL,
and a job that runs past its time limit must be stopped — a thread cannot be, a process can
be killed. Each :class:`EngineWorker` owns one child (``spawn``: a clean interpreter, no
copy of the parent's event loop or connections) that loads the engine once and then answers
requests over a pipe, one at a time. A job past its time limit kills the child; the next job
starts a fresh one.

The child ignores SIGINT/SIGTERM (the service decides when it ends: it finishes the job in
flight, then closes the pipe) and exits by itself when its parent dies, even by SIGKILL, so a
crashed replica leaves no decoder running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from sipum.errors import ConfigError

from sipum_transcriber.engines import EngineSpec, Transcript, UnsupportedLanguage, load_engine

log = logging.getLogger("sipum.misc.transcriber")


class TranscriptionTimeout(Exception):
    """The engine did not finish within the time limit (its process was killed)."""


class TranscriptionFailed(Exception):
    """The engine raised, or its process died."""


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _serve(spec: EngineSpec, conn: Connection, parent_pid: int) -> None:
    """The child's main: load the engine, then answer (pcm, rate, language) requests."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        engine = load_engine(spec)
    except ConfigError as exc:
        conn.send(("config", exc.setting, exc.problem))
        return
    except Exception as exc:
        conn.send(("config", "transcriber_engine", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.name, engine.version))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        pcm, sample_rate, language = request
        try:
            conn.send(("ok", engine.transcribe(pcm, sample_rate, language)))
        except UnsupportedLanguage as exc:
            conn.send(("unsupported", str(exc)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:300]))


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT/SIGTERM ignored while a child starts: an ignored signal stays ignored across
    exec, and Python keeps it so, so a Ctrl-C to the process group during the child's
    interpreter start-up (before ``_serve`` runs) cannot kill it. Only the main thread may
    change handlers; elsewhere the child is started as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class EngineWorker:
    def __init__(self, spec: EngineSpec, *, load_timeout: float = 120.0) -> None:
        self.spec = spec
        self.load_timeout = load_timeout
        self.engine_name = spec.name
        self.engine_version = ""
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the child and wait until its engine is loaded; ``ConfigError`` if it cannot
        be (the child's message names the setting)."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(self.spec, theirs, os.getpid()),
            name=f"sipum-transcriber-{self.spec.name}",
            daemon=True,
        )
        with _signals_ignored():
            process.start()
        theirs.close()
        self._process, self._conn = process, ours
        try:
            reply = await asyncio.wait_for(asyncio.to_thread(ours.recv), self.load_timeout)
        except (TimeoutError, EOFError, OSError) as exc:
            self.kill()
            what = "timed out" if isinstance(exc, TimeoutError) else "died"
            raise ConfigError("transcriber_engine", f"loading {self.spec.name} {what}") from None
        if reply[0] == "config":
            self.kill()
            raise ConfigError(reply[1], reply[2])
        _, self.engine_name, self.engine_version = reply

    async def transcribe(
        self, pcm: bytes, sample_rate: int, language: str, *, time_limit: float
    ) -> Transcript:
        async with self._lock:
            if self._process is None or not self._process.is_alive():
                await self.start()
            conn = self._conn
            assert conn is not None
            try:
                conn.send((pcm, sample_rate, language))
                reply: Any = await asyncio.wait_for(asyncio.to_thread(conn.recv), time_limit)
            except TimeoutError:
                self.kill()  # the thread blocked in recv() gets EOFError and ends
                raise TranscriptionTimeout(f"no result within {time_limit:.0f}s") from None
            except (EOFError, OSError, BrokenPipeError):
                self.kill()
                raise TranscriptionFailed("the engine process died") from None
        kind = reply[0]
        if kind == "ok":
            result: Transcript = reply[1]
            return result
        if kind == "unsupported":
            raise UnsupportedLanguage(reply[1])
        raise TranscriptionFailed(reply[1])

    def kill(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.kill()
                self._process.join(5)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._process = self._conn = None

    async def close(self) -> None:
        """Ask the child to exit after the job in flight; kill it if it does not."""
        async with self._lock:
            process, conn = self._process, self._conn
            if process is None or conn is None:
                return
            with contextlib.suppress(Exception):
                conn.send(None)
            await asyncio.to_thread(process.join, 5)
            self.kill()
