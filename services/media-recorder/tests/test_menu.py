"""The main menu's state machine on a fake clock: the count, the order, envelopes, the key map,
heard / folder moves, skipping within a message, undelete, timeouts and the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sipum_media_recorder.menu import (
    Entry,
    Hangup,
    MailboxMenu,
    MarkHeard,
    MessageAudio,
    Move,
    Play,
    Spoken,
    caller_items,
    count_items,
)

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def entry(mid: int, folder: str = "inbox", heard: bool = False, hours_ago: float = 1, **kw):
    values = {
        "caller_uri": f"sip:+4930{mid:04d}@example.org",
        "caller_display": "",
        "duration_s": 10.0,
    }
    values.update(kw)
    return Entry(
        id=mid,
        folder=folder,  # type: ignore[arg-type]
        heard=heard,
        received_at=NOW - timedelta(hours=hours_ago),
        **values,  # type: ignore[arg-type]
    )


def menu(*entries: Entry, **kw) -> MailboxMenu:
    values = {"zone": BERLIN, "digit_timeout": 5.0, "menu_repeats": 3}
    values.update(kw)
    return MailboxMenu(entries, **values)  # type: ignore[arg-type]


def play(actions) -> Play:
    [p] = [a for a in actions if isinstance(a, Play)]
    return p


def audio_of(actions) -> MessageAudio:
    [item] = play(actions).items
    assert isinstance(item, MessageAudio)
    return item


def test_count_then_envelope_then_audio_new_oldest_first_then_saved() -> None:
    m = menu(
        entry(1, "saved", heard=True, hours_ago=50),
        entry(2, hours_ago=2),
        entry(3, hours_ago=5),
        entry(4, "trash", hours_ago=1),
        entry(5, "inbox", heard=True, hours_ago=30),
    )
    first = play(m.start(NOW))
    assert first.kind == "envelope"
    items = list(first.items)
    # "You have two new messages and two saved messages." (trash not offered)
    assert items[: items.index("message")] == count_items(2, 2)
    assert count_items(2, 2) == [
        "you-have", "number-2", "count-new-messages", "and", "number-2", "count-saved-messages",
    ]  # fmt: skip
    # Message 1, received today at 11 A M Berlin (10:00 UTC), from +4930 0003
    envelope = items[items.index("message") :]
    assert envelope[:3] == ["message", "number-1", "received"]
    assert envelope[3:8] == ["today", "at", "number-11", "am", "from"]
    assert envelope[8:] == ["digit-4", "digit-9", "digit-3", "digit-0", "digit-0", "digit-0",
                            "digit-0", "digit-3"]  # fmt: skip
    actions = m.play_finished(NOW)
    assert actions[0] == MarkHeard(3)
    assert audio_of(actions) == MessageAudio(3, 0.0)
    order = [3]
    for _ in range(3):
        m.digit("6", NOW, position=1.0)
        actions = m.play_finished(NOW)
        order.append(audio_of(actions).message_id)
    assert order == [3, 2, 1, 5]  # new oldest first, then saved oldest first
    # heard only for the new ones
    assert m.messages[2].heard and m.messages[3].heard


def test_counts_and_callers_are_said_sensibly() -> None:
    assert count_items(0, 0) == ["no-messages"]
    assert count_items(1, 0) == [
        "you-have", "number-1", "count-new-message", "and", "no", "count-saved-messages",
    ]  # fmt: skip
    assert caller_items(entry(1, caller_uri="tel:+1-212-555-0100")) == [
        "from", *[f"digit-{d}" for d in "12125550100"],
    ]  # fmt: skip
    bob = entry(1, caller_uri='"Bob" <sip:bob@example.org>', caller_display="Bob  Smith")
    assert caller_items(bob) == ["from", Spoken("Bob Smith")]
    assert caller_items(entry(1, caller_uri="sip:carol@example.org")) == ["from", Spoken("carol")]
    assert caller_items(entry(1, caller_uri="sip:anonymous@anonymous.invalid")) == ["from-unknown"]
    assert caller_items(entry(1, caller_uri="garbage")) == ["from-unknown"]


def test_no_messages_says_so_and_ends() -> None:
    m = menu(entry(1, "trash"))
    p = play(m.start(NOW))
    assert p.items == ("no-messages", "goodbye") and p.barge_in == ""
    assert m.play_finished(NOW) == [Hangup()] and m.ended
    assert m.digit("5", NOW) == []


def test_seven_deletes_and_goes_on_seven_again_undeletes_nine_saves() -> None:
    m = menu(entry(1, hours_ago=3), entry(2, hours_ago=2))
    m.start(NOW)
    m.play_finished(NOW)  # message 1 plays
    actions = m.digit("7", NOW, position=2.0)
    assert actions[0] == Move(1, "trash")
    p = play(actions)
    assert p.items[0] == "message-deleted" and p.kind == "envelope"
    assert p.items[1:3] == ("message", "number-2")
    # back to the deleted one, undelete it
    m.digit("4", NOW, position=0.5)
    actions = m.digit("7", NOW, position=0.5)
    assert actions[0] == Move(1, "inbox")
    assert play(actions).items == ("message-undeleted", "message-menu")
    # save it: moved, "Message saved.", next message
    actions = m.digit("9", NOW, position=0.2)
    assert actions[0] == Move(1, "saved")
    assert play(actions).items[:3] == ("message-saved", "message", "number-2")
    # 9 on the last: saved, no more messages, end menu
    m.play_finished(NOW)
    actions = m.digit("9", NOW, position=1.0)
    assert actions[0] == Move(2, "saved")
    assert play(actions).items == ("message-saved", "no-more-messages", "end-menu")
    # 9 again on an already saved message: no move
    m.play_finished(NOW)
    m.digit("4", NOW)  # end menu: the last message again
    actions = m.digit("9", NOW, position=0.1)
    assert not [a for a in actions if isinstance(a, Move)]


def test_skip_back_and_forward_within_the_message() -> None:
    m = menu(entry(1, duration_s=10.0))
    m.start(NOW)
    assert audio_of(m.play_finished(NOW)).offset == 0.0
    assert audio_of(m.digit("#", NOW, position=4.0)) == MessageAudio(1, 7.0)
    assert audio_of(m.digit("*", NOW, position=1.0)) == MessageAudio(1, 5.0)
    assert audio_of(m.digit("*", NOW, position=1.0)) == MessageAudio(1, 3.0)
    assert audio_of(m.digit("*", NOW, position=1.0)) == MessageAudio(1, 1.0)
    assert audio_of(m.digit("*", NOW, position=0.5)) == MessageAudio(1, 0.0)
    # forward past the end: the message menu
    m.digit("#", NOW, position=5.0)
    actions = m.digit("#", NOW, position=3.0)
    assert play(actions).items == ("message-menu",)
    # skipping never marks heard twice
    assert not [a for a in actions if isinstance(a, MarkHeard)]


def test_envelope_keys_and_previous_on_the_first() -> None:
    m = menu(entry(1), entry(2, hours_ago=0.5))
    m.start(NOW)
    assert play(m.digit("*", NOW, position=0.3)).kind == "envelope"  # envelope again
    assert audio_of(m.digit("#", NOW, position=0.3)) == MessageAudio(1, 0.0)  # skip it
    assert play(m.digit("4", NOW, position=1.0)).items == ("first-message", "message-menu")
    p = play(m.digit("5", NOW, position=0.1))
    assert p.kind == "envelope" and p.items[:2] == ("message", "number-1")


def test_menu_timeouts_repeat_then_goodbye() -> None:
    m = menu(entry(1), digit_timeout=5.0, menu_repeats=2)
    m.start(NOW)
    m.play_finished(NOW)  # audio
    assert play(m.play_finished(NOW)).items == ("message-menu",)
    assert m.play_finished(NOW) == [] and m.deadline == NOW + timedelta(seconds=5)
    assert m.timeout(NOW + timedelta(seconds=4.9)) == []  # not yet
    assert play(m.timeout(NOW + timedelta(seconds=5))).items == ("message-menu",)
    later = NOW + timedelta(seconds=20)
    m.play_finished(later)
    assert m.deadline == later + timedelta(seconds=5)
    assert m.digit("8", later) == [] and m.deadline == later + timedelta(seconds=5)  # no meaning
    p = play(m.timeout(later + timedelta(seconds=5)))
    assert p.items == ("goodbye",)
    assert m.play_finished(later) == [Hangup()] and m.ended


def test_pound_in_the_menu_exits_and_one_in_the_end_menu_starts_over() -> None:
    m = menu(entry(1), entry(2, hours_ago=0.5))
    m.start(NOW)
    m.play_finished(NOW)
    m.digit("6", NOW, position=1.0)
    m.play_finished(NOW)
    m.play_finished(NOW)  # message 2's audio ended
    assert play(m.digit("6", NOW)).items == ("no-more-messages", "end-menu")
    p = play(m.digit("1", NOW, position=0.2))
    assert p.items[:2] == ("message", "number-1")
    m.play_finished(NOW)
    m.play_finished(NOW)  # audio done → message menu
    assert play(m.digit("#", NOW, position=0.1)).items == ("goodbye",)
    assert m.digit("5", NOW) == []  # nothing interrupts the goodbye


def test_newest_first() -> None:
    m = menu(entry(1, hours_ago=3), entry(2, hours_ago=2), newest_first=True)
    m.start(NOW)
    assert audio_of(m.play_finished(NOW)).message_id == 2
