"""Running a program for the notifier, bounded: argv only, a time limit, a cap on what it prints.

Both the notify command (``-k``) and the sendmail transport (``-m``) hand data to a program the
operator named. Nothing from a caller ever becomes part of a command line or a shell string: the
program is started with ``exec`` (no shell) and gets its data on stdin and in environment
variables. The program runs in its own session so that, at the time limit, the whole process
group is killed — a shell script's children included — and nothing lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finished:
    """A program that ran to its end within the time limit."""

    returncode: int
    stdout: bytes
    """At most ``output_limit`` bytes of what it wrote to stdout (the rest was read and dropped)."""
    stderr: bytes
    truncated: bool
    """True when it wrote more than ``output_limit`` bytes on either stream."""


class ProgramTimeout(TimeoutError):
    """The program did not finish within its time limit and was killed (with its children)."""


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if len(chunk) > room:
            truncated = True
        kept += chunk[: max(room, 0)]
    return bytes(kept), truncated


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    # A program may exit without reading all of its input: that is its business, not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()
        await stdin.wait_closed()


async def run_program(
    argv: Sequence[str],
    *,
    stdin: bytes,
    env: Mapping[str, str] | None,
    time_limit: float,
    output_limit: int,
) -> Finished:
    """Run ``argv`` (no shell), write ``stdin`` to it, wait at most ``time_limit`` seconds.

    ``env=None`` inherits this process's environment (sendmail needs its usual one); the notify
    command gets an explicit one without our secrets. Raises ``ProgramTimeout`` after killing
    the process group, ``OSError`` when the program cannot be started.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else dict(env),
        start_new_session=True,
    )
    assert process.stdin and process.stdout and process.stderr
    work = asyncio.gather(
        _feed(process.stdin, stdin),
        _read_capped(process.stdout, output_limit),
        _read_capped(process.stderr, output_limit),
        process.wait(),
    )
    try:
        _, (out, out_cut), (err, err_cut), returncode = await asyncio.wait_for(work, time_limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise ProgramTimeout(f"{argv[0]} did not finish within {time_limit:g} s") from None
    return Finished(returncode, out, err, out_cut or err_cut)
