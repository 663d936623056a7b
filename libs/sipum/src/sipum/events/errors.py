"""What ``EventBus`` raises when talking to NATS goes wrong."""

from __future__ import annotations


class EventBusError(Exception):
    """Something went wrong talking to NATS."""


class NoResponders(EventBusError):
    """Nobody subscribes to the requested subject (e.g. no media-recorder is running)."""


class RequestTimeout(EventBusError):
    """A responder exists but did not answer within the timeout."""


class RemoteError(EventBusError):
    """The responder answered with an error (``code`` is one of ``RpcError``'s codes).

    Raise it from a ``serve()`` handler to choose the code the caller sees.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
