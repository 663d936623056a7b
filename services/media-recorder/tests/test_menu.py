"""The main menu's state machine on a fake clock: the count, the order, envelopes, the key map,
heard / folder moves, skipping within a message, undelete, timeouts and the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sipum_media_recorder.mainmenu import forwarded_audio
from sipum_media_recorder.menu import (
    ChangePin,
    Entry,
    Forward,
    Hangup,
    MailboxMenu,
    MarkHeard,
    MessageAudio,
    Move,
    Play,
    RecordComment,
    RecordedGreeting,
    RecordGreeting,
    SaveGreeting,
    Spoken,
    caller_items,
    count_items,
    keypad_digits,
    mailbox_directory,
)
from sipum_protocol.media.codecs import resample
from sipum_protocol.media.playback import PcmItem
from sipum_testing.rtp_caller import best_correlation, speech_like

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
    assert m.digit("2", later) == [] and m.deadline == later + timedelta(seconds=5)  # no meaning
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


def type_pin(m: MailboxMenu, pin: str, now: datetime) -> list:
    """The first key interrupts the prompt (position given), the rest arrive while waiting."""
    actions: list = []
    for n, key in enumerate(pin):
        actions = m.digit(key, now, position=0.3 if n == 0 else None)
        if key != "#":
            assert actions == [] and m.deadline == now + timedelta(seconds=5)
    return actions


def test_mailbox_options_change_the_pin_typed_twice() -> None:
    m = menu(entry(1), username="4711")
    m.start(NOW)
    m.play_finished(NOW)  # audio
    p = play(m.digit("0", NOW, position=0.5))
    assert p.items == ("options-menu",) and p.barge_in == "12345*"
    p = play(m.digit("5", NOW, position=0.2))
    assert p.items == ("enter-new-pin",) and "#" in p.barge_in
    # a trivial one is refused, so is one with the mailbox number
    assert play(type_pin(m, "1234#", NOW)).items == ("pin-not-accepted", "enter-new-pin")
    assert play(type_pin(m, "94711#", NOW)).items == ("pin-not-accepted", "enter-new-pin")
    assert play(type_pin(m, "12#", NOW)).items == ("pin-not-accepted", "enter-new-pin")
    # * starts over
    assert play(type_pin(m, "99*5820#", NOW)).items == ("reenter-new-pin",)
    # typed differently the second time: again from the first
    assert play(type_pin(m, "5821#", NOW)).items == ("pins-differ", "enter-new-pin")
    assert play(type_pin(m, "5820#", NOW)).items == ("reenter-new-pin",)
    actions = type_pin(m, "5820#", NOW)
    assert actions[0] == ChangePin("5820")
    assert "5820" not in repr(actions[0])  # never in a log line
    assert play(actions).items == ("pin-changed", "options-menu")
    # * goes back to the message menu
    assert play(m.digit("*", NOW, position=0.1)).items == ("message-menu",)


def test_new_pin_timeouts_go_back_to_the_options_then_goodbye() -> None:
    m = menu(entry(1), menu_repeats=2)
    m.start(NOW)
    m.play_finished(NOW)
    m.play_finished(NOW)  # message menu played: waiting
    m.digit("0", NOW)
    m.play_finished(NOW)
    m.digit("5", NOW)
    m.play_finished(NOW)  # "enter your new PIN" played: waiting for digits
    m.digit("5", NOW)
    later = NOW + timedelta(seconds=5)
    assert play(m.timeout(later)).items == ("options-menu",)  # gave up typing
    m.play_finished(later)
    assert play(m.timeout(later + timedelta(seconds=5))).items == ("goodbye",)


def test_options_from_the_end_menu_go_back_there() -> None:
    m = menu(entry(1))
    m.start(NOW)
    m.play_finished(NOW)
    m.digit("6", NOW, position=1.0)  # after the last: the end menu
    m.play_finished(NOW)
    assert play(m.digit("0", NOW)).items == ("options-menu",)
    assert play(m.digit("*", NOW, position=0.1)).items == ("end-menu",)


def test_greetings_recorded_reviewed_kept_or_cancelled() -> None:
    m = menu(entry(1))
    m.start(NOW)
    m.play_finished(NOW)
    m.play_finished(NOW)  # message menu
    m.digit("0", NOW, position=0.5)
    p = play(m.digit("2", NOW, position=0.5))  # the busy greeting
    assert p.items == ("record-greeting", "beep") and p.barge_in == ""
    assert m.play_finished(NOW) == [RecordGreeting("busy")]
    assert m.deadline is None and m.digit("1", NOW) == []  # recording: keys are its business
    # nothing worth keeping: back to the options
    assert play(m.greeting_recorded(NOW, None)).items == ("greeting-not-recorded", "options-menu")
    m.digit("2", NOW, position=0.1)
    m.play_finished(NOW)
    assert play(m.greeting_recorded(NOW, 3.5)).items == ("review-menu",)
    assert play(m.digit("2", NOW, position=0.4)).items == (RecordedGreeting(), "review-menu")
    assert play(m.digit("3", NOW, position=0.4)).items == ("record-greeting", "beep")
    assert m.play_finished(NOW) == [RecordGreeting("busy")]
    m.greeting_recorded(NOW, 2.0)
    actions = m.digit("1", NOW, position=0.2)
    assert actions[0] == SaveGreeting("busy")
    assert play(actions).items == ("greeting-saved", "options-menu")
    # the name, cancelled
    m.digit("3", NOW, position=0.1)
    assert m.play_finished(NOW) == [RecordGreeting("name")]
    m.greeting_recorded(NOW, 1.0)
    actions = m.digit("*", NOW, position=0.1)
    assert not [a for a in actions if isinstance(a, SaveGreeting)]
    assert play(actions).items == ("options-menu",)


# -- forwarding (8) and pause (3) ------------------------------------------------------------


def test_keypad_spelling_and_the_directory() -> None:
    assert keypad_digits("alice") == "25423"
    assert keypad_digits("Bob.Smith-2") == "26276484" + "2"
    assert keypad_digits("1001") == "1001"
    assert keypad_digits("ü") == ""
    directory = mailbox_directory(["alice", "bob", "amo", "1001", "ü"])
    assert directory["25423"] == ("alice",)
    assert directory["262"] == ("bob",) and directory["266"] == ("amo",)
    assert "" not in directory
    assert mailbox_directory(["cat", "act", "bat"])["228"] == ("act", "bat", "cat")


def forwarding_menu() -> MailboxMenu:
    m = menu(
        entry(1, duration_s=10.0),
        directory=mailbox_directory(["alice", "bob", "carol", "act", "cat", "228"]),
    )
    m.start(NOW)
    m.play_finished(NOW)  # the audio plays
    return m


def test_eight_forwards_with_a_recorded_comment() -> None:
    m = forwarding_menu()
    p = play(m.digit("8", NOW, position=2.0))  # during the audio
    assert p.items == ("forward-enter-mailbox",) and p.kind == "menu"
    assert m.play_finished(NOW) == [] and m.deadline == NOW + timedelta(seconds=5)
    for d in "262":  # b-o-b
        assert m.digit(d, NOW) == []
    p = play(m.digit("#", NOW))
    assert p.items == ("forward-to", Spoken("bob"), "forward-comment-menu")
    m.play_finished(NOW)
    p = play(m.digit("1", NOW))
    assert p.items == ("record-comment", "beep") and p.barge_in == ""
    assert m.play_finished(NOW) == [RecordComment()]
    assert m.deadline is None  # recording: no menu timeout meanwhile
    assert m.comment_recorded(NOW, 2.5) == [Forward(1, "bob", with_comment=True)]
    assert m.deadline is None  # the adapter forwards, then says how it went
    assert play(m.forward_done(NOW, "forwarded")).items == ("message-forwarded", "message-menu")
    # no voice in the comment: the comment menu again, nothing forwarded yet
    m.play_finished(NOW)
    m.digit("8", NOW)
    for d in "25423#":
        m.digit(d, NOW)
    m.digit("1", NOW)
    m.play_finished(NOW)
    p = play(m.comment_recorded(NOW, None))
    assert p.items == ("greeting-not-recorded", "forward-comment-menu")
    assert m.digit("2", NOW) == [Forward(1, "alice", with_comment=False)]


def test_forward_without_comment_unknown_ambiguous_cancel_and_failures() -> None:
    m = forwarding_menu()
    m.digit("8", NOW, position=1.0)
    for d in "2276":  # "carl": nobody
        m.digit(d, NOW)
    assert play(m.digit("#", NOW)).items == ("no-such-mailbox", "message-menu")
    assert m.digit("2", NOW) == []  # back in the message menu: 2 means nothing there
    # act / cat share 228, but a username that is those very digits wins
    m.digit("8", NOW)
    for d in "228":
        assert m.digit(d, NOW) == []
    assert play(m.digit("#", NOW)).items[:2] == ("forward-to", Spoken("228"))
    assert play(m.digit("*", NOW)).items == ("message-menu",)  # cancelled in the comment menu
    m2 = menu(entry(1), directory=mailbox_directory(["act", "cat"]))
    m2.start(NOW)
    m2.play_finished(NOW)
    m2.digit("8", NOW)
    for d in "228#":
        actions = m2.digit(d, NOW)
    assert play(actions).items == ("mailbox-ambiguous", "message-menu")
    # * while typing cancels; a second 8 starts with nothing typed
    m2.digit("8", NOW)
    m2.digit("2", NOW)
    assert play(m2.digit("*", NOW)).items == ("message-menu",)
    m2.digit("8", NOW)
    for d in "2287#":  # "act" + a stray 7: the typing began afresh, so not "2282287"
        actions = m2.digit(d, NOW)
    assert play(actions).items == ("no-such-mailbox", "message-menu")
    # the adapter's outcomes are said
    for outcome, said in [
        ("no-mailbox", "no-such-mailbox"),
        ("full", "forward-mailbox-full"),
        ("gone", "forward-failed"),
    ]:
        assert play(m2.forward_done(NOW, outcome)).items == (said, "message-menu")  # type: ignore[arg-type]


def test_forward_typing_times_out_back_to_the_message_menu() -> None:
    m = forwarding_menu()
    m.digit("8", NOW)
    m.play_finished(NOW)
    m.digit("2", NOW, position=None)
    assert m.timeout(NOW + timedelta(seconds=4)) == []
    assert play(m.timeout(NOW + timedelta(seconds=5))).items == ("message-menu",)
    assert m.comment_recorded(NOW, 1.0) == []  # nothing to forward any more


def test_three_pauses_and_resumes_where_it_stopped() -> None:
    m = menu(entry(1, duration_s=10.0), pause_limit=30.0)
    m.start(NOW)
    m.play_finished(NOW)
    p = play(m.digit("3", NOW, position=4.0))
    assert p.items == ("message-paused",) and "3" in p.barge_in
    assert m.play_finished(NOW) == [] and m.deadline == NOW + timedelta(seconds=30)
    # a long pause is not "unanswered": no goodbye, just a wait
    assert m.timeout(NOW + timedelta(seconds=29)) == []
    actions = m.digit("3", NOW + timedelta(seconds=20))
    assert audio_of(actions) == MessageAudio(1, 4.0)
    assert not [a for a in actions if isinstance(a, MarkHeard)]
    # pause again at 4 + 2 s; # resumes 3 s later, * 3 s earlier
    m.digit("3", NOW, position=2.0)
    assert audio_of(m.digit("#", NOW)) == MessageAudio(1, 9.0)
    m.digit("3", NOW, position=0.5)  # at 9.5
    assert audio_of(m.digit("*", NOW)) == MessageAudio(1, 6.5)
    m.digit("3", NOW, position=3.0)  # at 9.5: # goes past the end → the message menu
    assert play(m.digit("#", NOW)).items == ("message-menu",)
    # paused and left alone: it resumes by itself
    m.digit("5", NOW)
    m.play_finished(NOW)  # the envelope → the audio from 0
    m.digit("3", NOW, position=1.5)
    m.play_finished(NOW)
    assert audio_of(m.timeout(NOW + timedelta(seconds=30))) == MessageAudio(1, 1.5)
    # other keys act as in the message menu while paused
    m.digit("3", NOW, position=1.0)
    m.play_finished(NOW)
    actions = m.digit("7", NOW)
    assert actions[0] == Move(1, "trash")
    # 3 is not pause in the message menu (only during the audio)
    assert m.digit("3", NOW) == []


def test_forwarded_audio_is_comment_gap_original_at_the_original_rate() -> None:
    original = PcmItem(speech_like(1.0, seed=1, rate=8000), 8000)
    comment16 = speech_like(0.5, seed=2, rate=16000)
    out = forwarded_audio(PcmItem(comment16, 16000), original)
    assert len(out) == 4000 + 2400 + 8000  # 0.5 s at 8 kHz, 0.3 s of silence, 1 s
    assert not out[4000:6400].any()
    assert np.array_equal(out[6400:], original.pcm)
    assert best_correlation(out[:4000], resample(comment16, 16000, 8000))[0] > 0.99
    assert np.array_equal(forwarded_audio(None, original), original.pcm)
