"""``sipum-events``: watch sipum's events as they happen, or replay them from a time.

    sipum-events                      # follow new events
    sipum-events --since 10m          # replay the last ten minutes, then follow
    sipum-events --since 2026-11-26T05:00:00Z --no-follow --json

One line per event: ``<event time> <kind> <summary>``; ``--json`` prints one JSON object per
line instead: ``{"seq": <stream seq>, "subject": ..., "kind": ..., "event": {payload}}``.
Reads through an ordered, ephemeral JetStream consumer (nothing is acked or changed on the
server). Stops on Ctrl-C / SIGTERM (exit 0), after ``--count N`` events, or — with
``--no-follow`` — when it has caught up with the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api
from pydantic import ValidationError

from sipum.errors import ConfigError
from sipum.events import DEFAULT_PREFIX, DEFAULT_STREAM, EVENT_MODELS, EventBus
from sipum.events.connection import DEFAULT_NATS_URL, redact_url

_RELATIVE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d``, ``1h30m``, ``45s`` (ago), or an ISO 8601 time (UTC if no zone)."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.fullmatch(text.strip())
    if text.strip() and m and any(m.groups()):
        d, h, mins, s = (int(g) if g else 0 for g in m.groups())
        return now - timedelta(days=d, hours=h, minutes=mins, seconds=s)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use e.g. 10m, 2h, 1d or 2026-11-26T05:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_event(msg: Msg, prefix: str, *, as_json: bool) -> str:
    """One output line for one stream message (never raises on a bad payload)."""
    root = f"{prefix}.evt."
    kind = msg.subject[len(root) :] if msg.subject.startswith(root) else msg.subject
    seq = msg.metadata.sequence.stream
    model = EVENT_MODELS.get(kind)
    event: Any = None
    error = None
    if model is not None:
        try:
            event = model.model_validate_json(msg.data)
        except ValidationError as exc:
            error = f"invalid payload: {exc.error_count()} errors"
    else:
        error = "unknown event kind"
    if as_json:
        record: dict[str, Any] = {"seq": seq, "subject": msg.subject, "kind": kind}
        if event is not None:
            record["event"] = event.model_dump(mode="json")
        else:
            try:
                record["event"] = json.loads(msg.data)
            except ValueError:
                record["event"] = None
                record["raw"] = msg.data.decode(errors="replace")
            record["error"] = error
        return json.dumps(record, separators=(",", ":"))
    if event is not None:
        return f"{_iso(event.ts)} {kind} {event.summary()}".rstrip()
    stored = msg.metadata.timestamp
    raw = msg.data.decode(errors="replace").replace("\n", " ")
    if len(raw) > 200:
        raw = raw[:200] + "…"
    return f"{_iso(stored)} {kind} ({error}) {raw}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sipum-events",
        description="Follow sipum's events live, or replay the stream from a time.",
    )
    p.add_argument(
        "-s",
        "--server",
        default=os.environ.get("SIPUM_NATS_URL", DEFAULT_NATS_URL),
        help="NATS URL (default: $SIPUM_NATS_URL or %(default)s)",
    )
    p.add_argument(
        "--stream",
        default=os.environ.get("SIPUM_EVENTS_STREAM", DEFAULT_STREAM),
        help="JetStream stream (default: $SIPUM_EVENTS_STREAM or %(default)s)",
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get("SIPUM_EVENTS_PREFIX", DEFAULT_PREFIX),
        help="subject prefix (default: $SIPUM_EVENTS_PREFIX or %(default)s)",
    )
    p.add_argument(
        "--since",
        metavar="TIME",
        help="replay from TIME: 10m, 2h, 1d (ago) or an ISO time like 2026-11-26T05:00:00Z",
    )
    p.add_argument("--all", action="store_true", help="replay everything the stream holds")
    p.add_argument(
        "--no-follow",
        action="store_true",
        help="with --since/--all: exit when caught up instead of waiting for new events",
    )
    p.add_argument(
        "-k",
        "--kind",
        default=">",
        help="only these kinds, e.g. message.created or 'message.*' (default: all)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("-n", "--count", type=int, metavar="N", help="exit after N events")
    return p


async def follow(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"sipum-events: --since: {exc}", file=err)
            return 2
    try:
        bus = await EventBus.connect(
            args.server, "sipum-events", prefix=args.prefix, stream=args.stream
        )
    except (ConfigError, ValueError) as exc:
        print(f"sipum-events: {exc}", file=err)
        return 2

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await bus.js.stream_info(args.stream)
        except nats.js.errors.NotFoundError:
            print(
                f"sipum-events: stream {args.stream} does not exist on "
                f"{redact_url(args.server)} (no service has started yet?)",
                file=err,
            )
            return 1
        config = api.ConsumerConfig()
        if since is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = since
        elif args.all:
            config.deliver_policy = api.DeliverPolicy.ALL
        else:
            config.deliver_policy = api.DeliverPolicy.NEW
        subject = bus.subjects.events_root + args.kind
        sub = await bus.js.subscribe(
            subject, stream=args.stream, ordered_consumer=True, config=config
        )
        replaying = since is not None or args.all
        nothing_to_replay = False
        if replaying and args.no_follow:
            # num_pending alone races with delivery (it counts what is not yet *delivered*);
            # nothing was there iff nothing is pending and nothing was delivered.
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else 0
            nothing_to_replay = not info.num_pending and not delivered
        what = f"from {_iso(since)}" if since else ("from the start" if args.all else "live")
        print(
            f"sipum-events: following {subject} on stream {args.stream} at "
            f"{redact_url(args.server)} ({what})",
            file=err,
            flush=True,
        )
        if nothing_to_replay:
            return 0
        shown = 0
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.create_task(sub.next_msg(timeout=None))
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
                        await getter
                    break
                msg = getter.result()
                print(format_event(msg, args.prefix, as_json=args.json), file=out, flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
                if args.no_follow and replaying and msg.metadata.num_pending == 0:
                    break
        finally:
            stopper.cancel()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await bus.close(timeout=2, drain=False)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.count is not None and args.count < 1:
        build_parser().error("--count must be at least 1")
    try:
        code = asyncio.run(follow(args, sys.stdout, sys.stderr))
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        code = 0
    except KeyboardInterrupt:
        code = 0
    raise SystemExit(code)


if __name__ == "__main__":
    main()
