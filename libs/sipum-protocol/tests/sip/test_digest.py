"""Digest authentication (RFC 2617 §3.5, RFC 7616 §3.9.1, RFC 8760) from a stored HA1."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipum_protocol.sip.digest import (
    Challenge,
    DigestError,
    SignedNonces,
    authorization_from_ha1,
    compute_ha1,
    make_challenge,
    parse_authorization,
    parse_challenge,
    select_challenge,
    verify,
    verify_authorization,
)
from sipum_protocol.sip.message import SipParseError

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def test_rfc2617_section_3_5_example() -> None:
    ch = parse_challenge(RFC2617_CHALLENGE)
    assert ch.realm == "testrealm@host.com"
    assert ch.qop == ["auth", "auth-int"]
    assert ch.algorithm == "MD5" and not ch.stale
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    value = authorization_from_ha1(
        ch,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        ha1=ha1,
        cnonce="0a4f113b",
        nc=1,
    )
    cred = parse_authorization(value)
    assert cred.response == "6629fae49393a05397450978507c4ef1"
    assert (cred.qop, cred.nc, cred.cnonce) == ("auth", "00000001", "0a4f113b")
    assert cred.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and "qop=auth" in value


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    header = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    ch = parse_challenge(header)
    assert ch.algorithm == algorithm and ch.qop == ["auth", "auth-int"]
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    value = authorization_from_ha1(
        ch,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        ha1=ha1,
        cnonce=RFC7616_CNONCE,
        nc=1,
    )
    assert parse_authorization(value).response == expected
    assert f"algorithm={algorithm}" in value
    assert verify_authorization(value, "GET", ha1, realm="http-auth@example.org")
    assert not verify_authorization(value, "POST", ha1)


def test_ha1_dict_selects_by_algorithm_and_nc_is_8_hex_digits() -> None:
    ch = parse_challenge(make_challenge("sip.example", "n1", algorithm="SHA-256"))
    ha1s = {
        "MD5": compute_ha1("alice", "sip.example", "pw", "MD5"),
        "SHA-256": compute_ha1("alice", "sip.example", "pw", "SHA-256"),
    }
    value = authorization_from_ha1(
        ch, method="REGISTER", uri="sip:sip.example", username="alice", ha1=ha1s, nc=0x1A
    )
    assert "nc=0000001a" in value
    assert verify(value, "REGISTER", ha1s["SHA-256"], nonce="n1")
    assert not verify(value, "REGISTER", ha1s["MD5"])
    with pytest.raises(DigestError):
        authorization_from_ha1(
            ch, method="REGISTER", uri="sip:x", username="a", ha1={"MD5": ha1s["MD5"]}
        )


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess", "SHA-512-256"])
def test_sess_and_other_algorithms_round_trip(algorithm: str) -> None:
    ch = parse_challenge(make_challenge("r", "nonce-x", algorithm=algorithm, opaque="o"))
    ha1 = compute_ha1("bob", "r", "secret", algorithm)
    value = authorization_from_ha1(ch, method="INVITE", uri="sip:b@r", username="bob", ha1=ha1)
    assert verify_authorization(value, "INVITE", ha1)
    other = compute_ha1("bob", "r", "wrong", algorithm)
    assert not verify_authorization(value, "INVITE", other)


def test_no_qop_rfc2069_compatibility() -> None:
    ch = Challenge(realm="r", nonce="abc", qop=[])
    ha1 = compute_ha1("u", "r", "p")
    value = authorization_from_ha1(ch, method="REGISTER", uri="sip:r", username="u", ha1=ha1)
    assert "qop=" not in value and "nc=" not in value and "cnonce=" not in value
    assert verify_authorization(value, "REGISTER", ha1)


def test_challenge_parsing_details() -> None:
    ch = parse_challenge(
        'digest  realm="a \\"q\\", b",nonce=abc , stale=TRUE,algorithm=sha-256 ,qop=auth,x=1'
    )
    assert ch.realm == 'a "q", b'
    assert ch.nonce == "abc"
    assert ch.stale is True
    assert ch.algorithm == "SHA-256"
    assert ch.qop == ["auth"]
    assert ch.params["x"] == "1"
    again = parse_challenge(str(ch))
    assert (again.realm, again.nonce, again.stale, again.algorithm) == (
        ch.realm,
        "abc",
        True,
        "SHA-256",
    )


@pytest.mark.parametrize(
    "bad",
    [
        'Basic realm="x"',
        'Digest realm="x"',
        'Digest nonce="x"',
        'Digest realm="x, nonce="y"',
        'Digest realm="x", nonce="y", algorithm=SHA-1',
        "",
    ],
)
def test_bad_challenges_raise_digest_error(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_challenge(bad)


def test_select_challenge_prefers_strongest_we_can_answer() -> None:
    md5 = make_challenge("r", "n1", algorithm="MD5")
    sha = make_challenge("r", "n2", algorithm="SHA-256")
    junk = "Basic realm=x"
    best = select_challenge([md5, sha, junk], ["MD5", "SHA-256"])
    assert best is not None and best.nonce == "n2"
    only_md5 = select_challenge([md5, sha], ["MD5"])
    assert only_md5 is not None and only_md5.nonce == "n1"
    assert select_challenge([sha], ["MD5"]) is None


def test_verify_rejects_malformed_credentials() -> None:
    ha1 = compute_ha1("u", "r", "p")
    assert not verify_authorization("Digest username=u", "REGISTER", ha1)
    assert not verify_authorization("garbage", "REGISTER", ha1)
    good = authorization_from_ha1(
        Challenge(realm="r", nonce="n", qop=["auth"]),
        method="REGISTER",
        uri="sip:r",
        username="u",
        ha1=ha1,
    )
    assert verify_authorization(good, "REGISTER", ha1, realm="r", nonce="n")
    assert not verify_authorization(good, "REGISTER", ha1, nonce="other")
    assert not verify_authorization(good.replace("nc=00000001", "nc=1"), "REGISTER", ha1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_challenge_parser_only_raises_digest_error(text: str) -> None:
    for value in (text, "Digest " + text, 'Digest realm="r", nonce="n", ' + text):
        try:
            ch = parse_challenge(value)
        except DigestError:
            continue
        try:
            out = authorization_from_ha1(
                ch, method="REGISTER", uri="sip:r", username="u", ha1="0" * 32
            )
        except DigestError:
            continue
        assert parse_authorization(out).nonce == ch.nonce


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_verify_never_raises(text: str) -> None:
    assert verify_authorization("Digest " + text, "REGISTER", "0" * 32) in (True, False)


def test_signed_nonces_tell_age_and_refuse_forgeries() -> None:
    nonces = SignedNonces(b"k" * 32, "test")
    nonce = nonces.issue(1000.0)
    assert nonces.age(nonce, 1030.5) == 30.5
    assert nonces.issue(1000.0) != nonce  # a random part: two challenges, two nonces
    # another key or another purpose does not accept it
    assert SignedNonces(b"x" * 32, "test").age(nonce, 1000.0) is None
    assert SignedNonces(b"k" * 32, "other").age(nonce, 1000.0) is None
    issued, rand, mac = nonce.split(".")
    for forged in (f"{int(issued) + 1}.{rand}.{mac}", f"{issued}.{rand}", "", "...", "x.y.z"):
        assert nonces.age(forged, 1000.0) is None, forged
