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
