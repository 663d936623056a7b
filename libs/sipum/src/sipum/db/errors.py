"""Errors the repository modules raise for conditions callers are expected to handle."""

from __future__ import annotations


class DomainNotFoundError(LookupError):
    """The named domain does not exist."""

    def __init__(self, domain: str) -> None:
        super().__init__(f"no such domain: {domain}")
        self.domain = domain


class DomainInUseError(RuntimeError):
    """A domain that still has users cannot be deleted."""


class UserExistsError(ValueError):
    """``username@domain`` is taken."""

    def __init__(self, address: str) -> None:
        super().__init__(f"user {address} already exists")
        self.address = address


class InvalidUsernameError(ValueError):
    """A username that cannot be the user part of a SIP URI / mailbox name here."""


class IdempotencyConflictError(RuntimeError):
    """An idempotency key already names a message of another mailbox."""
