from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sipum.blobstore import greeting_key, mailbox_prefix, message_key, partial_recording_key
from sipum.blobstore.base import validate_key


def test_message_key_layout_and_determinism() -> None:
    assert message_key("example.com", "alice", 67212) == "messages/example.com/alice/67212.wav"
    assert message_key("Example.COM", "alice", 67212, "au") == "messages/example.com/alice/67212.au"
    assert message_key("example.com", "alice", 1) == message_key("example.com", "alice", 1)
    assert message_key("example.com", "Alice", 1) != message_key("example.com", "alice", 1)
    assert message_key("example.com", "alice", 5).startswith(mailbox_prefix("example.com", "alice"))


def test_greeting_and_partial_keys() -> None:
    assert greeting_key("example.com", "bob", "busy") == "greetings/example.com/bob/busy.wav"
    assert partial_recording_key("s-1a2b") == "partial/s-1a2b.wav"
    assert partial_recording_key("s-1a2b", "pcm") == "partial/s-1a2b.pcm"


@pytest.mark.parametrize(
    "call",
    [
        lambda: message_key("example.com", "alice", 0),
        lambda: message_key("example.com", "alice", -3),
        lambda: message_key("example.com", "alice", True),
        lambda: message_key("example.com", "alice", "12"),
        lambda: message_key("example.com", "../bob", 1),
        lambda: message_key("example.com", ".alice", 1),
        lambda: message_key("example.com", "a/b", 1),
        lambda: message_key("example.com", "", 1),
        lambda: message_key("../etc", "alice", 1),
        lambda: message_key("example..com", "alice", 1),
        lambda: message_key("-example.com", "alice", 1),
        lambda: message_key("example.com", "alice", 1, "w/av"),
        lambda: message_key("example.com", "alice", 1, ""),
        lambda: greeting_key("example.com", "alice", "funny"),
        lambda: partial_recording_key("../x"),
        lambda: partial_recording_key(""),
        lambda: partial_recording_key("a.b"),
    ],
)
def test_invalid_parts_are_rejected(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


@given(st.text(max_size=40))
def test_valid_keys_never_escape(key: str) -> None:
    """Whatever validate_key accepts is a relative path with no dot segments."""
    try:
        validate_key(key)
    except ValueError:
        return
    parts = key.split("/")
    assert not key.startswith("/")
    assert all(p and not p.startswith(".") for p in parts)
    assert "\\" not in key and "\x00" not in key


def test_peaks_key_sits_next_to_the_audio() -> None:
    from sipum.blobstore import peaks_key

    key = message_key("example.com", "alice", 10000)
    assert peaks_key(key) == "messages/example.com/alice/10000.peaks.json"
    assert peaks_key(key).startswith(mailbox_prefix("example.com", "alice"))
    assert peaks_key("messages/d/u/7") == "messages/d/u/7.peaks.json"
    with pytest.raises(ValueError):
        peaks_key("../etc/passwd")
