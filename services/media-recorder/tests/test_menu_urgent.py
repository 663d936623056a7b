"""Urgent messages in the main menu: counted in the greeting and played first among the new
ones (either listening order); heard or saved urgent messages are not put first."""

from __future__ import annotations

from sipum_media_recorder.menu import count_items

from .test_menu import NOW, audio_of, entry, menu, play


def order_of(m) -> list[int]:  # type: ignore[no-untyped-def]
    m.start(NOW)
    order = [audio_of(m.play_finished(NOW)).message_id]
    for _ in range(len(m.messages) - 1):
        m.digit("6", NOW, position=1.0)
        order.append(audio_of(m.play_finished(NOW)).message_id)
    return order


def test_urgent_new_messages_are_counted_and_played_first() -> None:
    entries = [
        entry(1, hours_ago=5),
        entry(2, hours_ago=4, urgent=True),
        entry(3, hours_ago=3),
        entry(4, hours_ago=2, urgent=True),
        entry(5, "saved", heard=True, hours_ago=9, urgent=True),  # saved: with the saved
    ]
    m = menu(*entries)
    items = list(play(m.start(NOW)).items)
    assert items[: items.index("message")] == count_items(4, 1, 2)
    assert count_items(4, 1, 2) == [
        "you-have", "number-4", "count-new-messages", "number-2", "count-urgent",
        "and", "number-1", "count-saved-message",
    ]  # fmt: skip
    assert order_of(menu(*entries)) == [2, 4, 1, 3, 5]
    assert order_of(menu(*entries, newest_first=True)) == [4, 2, 3, 1, 5]


def test_no_urgent_no_mention() -> None:
    assert "count-urgent" not in count_items(2, 0, 0)
    assert order_of(menu(entry(1, hours_ago=2), entry(2, hours_ago=1))) == [1, 2]
