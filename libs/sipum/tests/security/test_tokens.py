import pytest
from sipum.security.tokens import InvalidToken, sign, verify


def test_round_trip_and_expiry() -> None:
    token = sign("k", "play", {"uid": 7, "mid": 67212}, ttl=60, now=1000)
    assert verify("k", "play", token, now=1059) == {"uid": 7, "mid": 67212, "exp": 1060}
    with pytest.raises(InvalidToken, match="expired"):
        verify("k", "play", token, now=1061)


def test_wrong_key_purpose_or_tampering_is_refused() -> None:
    token = sign("k", "play", {"uid": 7}, ttl=60)
    with pytest.raises(InvalidToken):
        verify("other", "play", token)
    with pytest.raises(InvalidToken):
        verify("k", "session", token)
    body, sig = token.split(".")
    forged = sign("attacker", "play", {"uid": 8}, ttl=60).split(".")[0] + "." + sig
    with pytest.raises(InvalidToken):
        verify("k", "play", forged)
    for junk in ("", "a", "a.b.c", "x" * 5000, body + "."):
        with pytest.raises(InvalidToken):
            verify("k", "play", junk)


def test_play_links_carry_user_and_message_and_nothing_else() -> None:
    from sipum.security.tokens import play_link_claims, sign_play_link

    token = sign_play_link("k", 7, 67212, ttl=60)
    assert play_link_claims("k", token) == (7, 67212)
    with pytest.raises(InvalidToken):  # a session token is not a playback link
        play_link_claims("k", sign("k", "session", {"uid": 7, "mid": 67212}, ttl=60))
    with pytest.raises(InvalidToken):  # right purpose, wrong shape
        play_link_claims("k", sign("k", "play", {"uid": "7", "mid": 67212}, ttl=60))
