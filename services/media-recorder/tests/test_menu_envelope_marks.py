"""The envelope's marks: "Urgent." for a message its caller marked urgent, and "Forwarded
message from <mailbox>" instead of the caller for a copy forwarded by phone."""

from __future__ import annotations

from sipum_media_recorder.menu import Spoken, envelope_items, forwarded_items
from sipum_protocol.media.prompts import PROMPT_TEXTS, PROMPT_TRANSLATIONS

from .test_menu import BERLIN, NOW, entry, menu, play


def test_an_urgent_message_s_envelope_says_urgent_after_its_number() -> None:
    items = envelope_items(2, entry(7, urgent=True), NOW, BERLIN)
    assert items[:4] == ["message", "number-2", "envelope-urgent", "received"]
    caller = ["from", *[f"digit-{d}" for d in "49300007"]]
    assert items[-len(caller) :] == caller  # the caller, as without the mark
    assert "envelope-urgent" not in envelope_items(2, entry(7), NOW, BERLIN)


def test_a_forwarded_copy_names_the_mailbox_it_came_from_instead_of_the_caller() -> None:
    copy = entry(8, caller_uri="sip:hanna@example.com", forwarded_from="hanna@example.com")
    items = envelope_items(1, copy, NOW, BERLIN)
    assert items[-2:] == ["forwarded-from", Spoken("hanna")]
    assert "from" not in items
    assert forwarded_items("1001@example.com") == [
        "forwarded-from", "digit-1", "digit-0", "digit-0", "digit-1",
    ]  # fmt: skip
    both = envelope_items(1, entry(9, urgent=True, forwarded_from="ivan@x.test"), NOW, BERLIN)
    assert both[2] == "envelope-urgent" and both[-2:] == ["forwarded-from", Spoken("ivan")]


def test_the_machine_plays_the_marks_in_the_first_envelope() -> None:
    m = menu(entry(1, urgent=True, forwarded_from="hanna@example.com"))
    items = list(play(m.start(NOW)).items)
    assert "envelope-urgent" in items and items[-2:] == ["forwarded-from", Spoken("hanna")]


def test_the_new_phrases_exist_in_every_prompt_language() -> None:
    for name in ("envelope-urgent", "forwarded-from", "review-message-no-urgent"):
        assert PROMPT_TEXTS[name]
        for language, texts in PROMPT_TRANSLATIONS.items():
            assert texts.get(name), (language, name)
