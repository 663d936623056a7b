"""Dialog state (RFC 3261 §12): creation on both sides, in-dialog requests, route sets."""

from __future__ import annotations

from sipum_protocol.sip.dialog import (
    Dialog,
    DialogId,
    DialogState,
    incoming_request_dialog_id,
    incoming_response_dialog_id,
)
from sipum_protocol.sip.message import SipRequest, SipResponse, parse_message


def _parse_request(text: str, body: str = "") -> SipRequest:
    data = text.replace("\n", "\r\n") + f"Content-Length: {len(body)}\r\n\r\n" + body
    msg = parse_message(data.encode())
    assert isinstance(msg, SipRequest)
    return msg


def _parse_response(text: str) -> SipResponse:
    msg = parse_message((text.replace("\n", "\r\n") + "Content-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, SipResponse)
    return msg


INVITE = """INVITE sip:bob@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
Max-Forwards: 69
From: "Alice" <sip:alice@example.com>;tag=ali
To: Bob <sip:bob@example.com>
Call-ID: c1@192.0.2.1
CSeq: 314 INVITE
Contact: <sip:alice@192.0.2.1:5062;transport=udp>
"""


def test_uas_dialog_from_invite() -> None:
    invite = _parse_request(INVITE)
    dialog = Dialog.from_incoming_request(
        invite, local_tag="bobtag", local_contact="<sip:bob@192.0.2.10>"
    )
    assert dialog.id == DialogId("c1@192.0.2.1", "bobtag", "ali")
    assert dialog.state is DialogState.EARLY
    # §12.1.1: route set = Record-Route in order; remote target = Contact; remote seq = CSeq.
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert dialog.remote_target == "sip:alice@192.0.2.1:5062;transport=udp"
    assert dialog.remote_seq == 314
    assert dialog.local_seq is None
    assert dialog.secure is False
    assert "tag" not in dialog.remote_uri and "alice@example.com" in dialog.remote_uri
    assert "bob@example.com" in dialog.local_uri
    dialog.confirm()
    assert dialog.confirmed


def test_uas_bye_follows_loose_route_set() -> None:
    invite = _parse_request(INVITE)
    dialog = Dialog.from_incoming_request(
        invite, local_tag="bobtag", local_contact="<sip:bob@192.0.2.10>"
    )
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb1")
    # Loose routing: R-URI is the remote target, Route is the whole route set (§12.2.1.1).
    assert bye.uri == "sip:alice@192.0.2.1:5062;transport=udp"
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    assert bye.from_.tag == "bobtag" and bye.to.tag == "ali"
    assert bye.call_id == "c1@192.0.2.1"
    method_seq = bye.cseq
    assert method_seq[1] == "BYE" and method_seq[0] >= 1
    # The next request increments the local sequence number.
    again = dialog.create_request("BYE", via="SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb2")
    assert again.cseq[0] == method_seq[0] + 1
    assert dialog.next_hop().host == "p2.example.com"
    # Round trip through the parser.
    assert isinstance(parse_message(bytes(bye)), SipRequest)


def test_strict_router_goes_into_request_uri() -> None:
    invite = _parse_request(INVITE.replace("<sip:p2.example.com;lr>", "<sip:p2.example.com>"))
    dialog = Dialog.from_incoming_request(invite, local_tag="b", local_contact="<sip:bob@h>")
    uri, routes = dialog.request_target()
    # §12.2.1.1 strict routing: R-URI = first route, Route = the rest + remote target.
    assert uri == "sip:p2.example.com"
    assert routes == [
        "<sip:p1.example.com;lr>",
        "<sip:alice@192.0.2.1:5062;transport=udp>",
    ]
    assert dialog.next_hop().host == "p2.example.com"


def test_no_route_set_targets_contact() -> None:
    invite = _parse_request(
        "\n".join(line for line in INVITE.splitlines() if not line.startswith("Record-Route"))
        + "\n"
    )
    dialog = Dialog.from_incoming_request(invite, local_tag="b", local_contact="<sip:bob@h>")
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP h;branch=z9hG4bKx")
    assert bye.headers.get_all("Route") == []
    hop = dialog.next_hop()
    assert (hop.host, hop.port) == ("192.0.2.1", 5062)


def test_uac_dialog_reverses_record_route() -> None:
    invite = _parse_request(
        """INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1
From: <sip:alice@example.com>;tag=ali
To: <sip:bob@example.com>
Call-ID: c2@h
CSeq: 7 INVITE
Contact: <sip:alice@192.0.2.1:5062>
"""
    )
    ok = _parse_response(
        """SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>
From: <sip:alice@example.com>;tag=ali
To: <sip:bob@example.com>;tag=bobt
Call-ID: c2@h
CSeq: 7 INVITE
Contact: <sip:bob@192.0.2.10:5070>
"""
    )
    dialog = Dialog.from_response(invite, ok, local_contact="<sip:alice@192.0.2.1:5062>")
    assert dialog.id == DialogId("c2@h", "ali", "bobt")
    assert incoming_response_dialog_id(ok) == dialog.id
    assert dialog.state is DialogState.CONFIRMED
    # §12.1.2: the UAC reverses the Record-Route list.
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@192.0.2.10:5070"
    assert dialog.local_seq == 7
    ack = dialog.create_request("ACK", via="SIP/2.0/UDP h;branch=z9hG4bKack", cseq=7)
    assert ack.cseq == (7, "ACK")
    assert ack.headers.get("Contact") is None
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP h;branch=z9hG4bKbye")
    assert bye.cseq == (8, "BYE")


def test_remote_cseq_ordering_and_target_refresh() -> None:
    invite = _parse_request(INVITE)
    dialog = Dialog.from_incoming_request(invite, local_tag="b", local_contact="<sip:bob@h>")
    assert incoming_request_dialog_id(invite) is None  # no To tag: outside a dialog
    reinvite = _parse_request(
        INVITE.replace("To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com>;tag=b")
        .replace("CSeq: 314", "CSeq: 315")
        .replace("alice@192.0.2.1:5062;transport=udp", "alice@198.51.100.7:5099")
    )
    assert incoming_request_dialog_id(reinvite) == dialog.id
    assert dialog.accept_remote_cseq(reinvite)
    dialog.refresh_target(reinvite)
    assert dialog.remote_target == "sip:alice@198.51.100.7:5099"
    # §12.2.2: lower (or equal) CSeq is out of order.
    old = _parse_request(
        INVITE.replace("CSeq: 314 INVITE", "CSeq: 300 BYE").replace("INVITE sip:", "BYE sip:")
    )
    assert not dialog.accept_remote_cseq(old)
    ack = _parse_request(
        INVITE.replace("CSeq: 314 INVITE", "CSeq: 1 ACK").replace("INVITE sip:", "ACK sip:")
    )
    assert dialog.accept_remote_cseq(ack)  # ACK keeps its INVITE's number
    # The route set is not changed by a target refresh (§12.2).
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]


def test_secure_flag_needs_tls_and_sips() -> None:
    invite = _parse_request(
        INVITE.replace("INVITE sip:bob@192.0.2.10", "INVITE sips:bob@192.0.2.10")
    )
    assert Dialog.from_incoming_request(
        invite, local_tag="b", local_contact="<sips:bob@h>", secure_transport=True
    ).secure
    assert not Dialog.from_incoming_request(
        invite, local_tag="b", local_contact="<sips:bob@h>", secure_transport=False
    ).secure


def test_tags_and_uris_read_from_text() -> None:
    from sipum_protocol.sip.dialog import header_tag, without_tag

    assert header_tag('"A;tag=no" <sip:a@h;tag=x>;tag=abc') == "abc"
    assert header_tag("<sip:a@h;tag=x>") is None  # a URI parameter is not the tag
    assert header_tag("sip:a@h ; TAG = t1 ;x=y") == "t1"
    assert header_tag("Bob <sip:b@h>") is None
    assert without_tag("Bob <sip:b@h>;tag=1;x=2") == "Bob <sip:b@h>;x=2"
    assert without_tag("sip:b@h;tag=1") == "sip:b@h"
    assert without_tag("<sip:b@h;tag=u>") == "<sip:b@h;tag=u>"


def test_contact_forms() -> None:
    for contact, expected in [
        ("<sip:a@192.0.2.1:5062;transport=tcp>;expires=60", "sip:a@192.0.2.1:5062;transport=tcp"),
        ("sip:a@192.0.2.1:5062;expires=60", "sip:a@192.0.2.1:5062"),
        ('"Al <x>" <sip:a@192.0.2.1>', "sip:a@192.0.2.1"),
    ]:
        invite = _parse_request(INVITE.replace("<sip:alice@192.0.2.1:5062;transport=udp>", contact))
        dialog = Dialog.from_incoming_request(invite, local_tag="b", local_contact="<sip:b@h>")
        assert dialog.remote_target == expected
