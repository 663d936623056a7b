"""The notifier's delivery errors, shared by every channel."""

from __future__ import annotations


class ChannelFailure(Exception):
    """A channel refused or failed one delivery: ``notification.failed`` is published and the
    event is redelivered with backoff (the base of each channel's transient error)."""
