"""TransactionLayer: matching (§17.2.3 incl. RFC 2543), CANCEL, §18.2 routing, malformed input."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipum_protocol.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
    parse_message,
)
from sipum_protocol.sip.transaction import (
    AckReceived,
    CancelReceived,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionState,
    TransactionTimeout,
    TransportError,
    response_destination,
    stamp_via,
    stream_fallback,
)

UAC = Peer("UDP", "127.0.0.1", 5062)


def req_bytes(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKc1",
    via_host: str = "127.0.0.1:5062",
    via_params: str = "",
    to_tag: str | None = None,
    cseq_method: str | None = None,
) -> bytes:
    branch_param = f";branch={branch}" if branch else ""
    to = "<sip:vm@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:vm@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}{branch_param}{via_params}\r\n"
        "Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKupstream\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        f"To: {to}\r\n"
        "Call-ID: layer-1@127.0.0.1\r\n"
        f"CSeq: 7 {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sent(layer: TransactionLayer) -> list[tuple[SipRequest | SipResponse, Peer]]:
    return [(parse_message(d), p) for d, p in layer.datagrams_to_send()]


def new_request(layer: TransactionLayer, data: bytes, now: float = 0.0) -> RequestReceived:
    layer.receive_data(data, UAC, now)
    (event,) = [e for e in layer.events() if isinstance(e, RequestReceived)]
    return event


# ---------------------------------------------------------------- CANCEL


def test_cancel_gets_200_and_the_invite_487_and_the_tu_is_told() -> None:
    layer = TransactionLayer()
    invite = new_request(layer, req_bytes()).transaction
    layer.send_response(invite, make_response(invite.request, 180, to_tag="vm1"), now=0.1)
    layer.datagrams_to_send()
    layer.receive_data(req_bytes("CANCEL"), UAC, now=1.0)
    out = sent(layer)
    assert [(m.status, m.cseq[1]) for m, _ in out] == [(200, "CANCEL"), (487, "INVITE")]  # type: ignore[union-attr]
    # §9.2: same To tag as the provisional.
    assert [m.to.tag for m, _ in out] == ["vm1", "vm1"]
    (event,) = [e for e in layer.events() if isinstance(e, CancelReceived)]
    assert event.invite is invite and invite.cancelled
    assert invite.state is TransactionState.COMPLETED
    # The TU's late 200 is refused: the INVITE is over.
    try:
        layer.send_response(invite, make_response(invite.request, 200, to_tag="vm1"), now=1.1)
    except Exception as error:  # noqa: BLE001
        assert type(error).__name__ == "TransactionStateError"
    else:
        raise AssertionError("late 200 accepted")
    # A retransmitted CANCEL is answered from its own transaction, the 487 is re-sent by G,
    # and the ACK for the 487 confirms the INVITE.
    layer.receive_data(req_bytes("CANCEL"), UAC, now=1.2)
    assert [m.status for m, _ in sent(layer)] == [200]  # type: ignore[union-attr]
    layer.handle_timer(1.5)
    assert [m.status for m, _ in sent(layer)] == [487]  # type: ignore[union-attr]
    layer.receive_data(req_bytes("ACK", to_tag="vm1"), UAC, now=1.6)
    assert invite.state is TransactionState.CONFIRMED
    assert layer.events() == []


def test_cancel_without_provisional_gets_a_fresh_tag_shared_by_200_and_487() -> None:
    layer = TransactionLayer()
    new_request(layer, req_bytes())
    layer.receive_data(req_bytes("CANCEL"), UAC, now=0.05)
    out = sent(layer)
    assert [m.status for m, _ in out] == [200, 487]  # type: ignore[union-attr]
    tags = {m.to.tag for m, _ in out}
    assert len(tags) == 1 and None not in tags


def test_cancel_after_final_response_gets_200_and_changes_nothing() -> None:
    layer = TransactionLayer()
    invite = new_request(layer, req_bytes()).transaction
    layer.send_response(invite, make_response(invite.request, 200, to_tag="vm1"), now=0.1)
    layer.datagrams_to_send()
    layer.receive_data(req_bytes("CANCEL"), UAC, now=0.2)
    assert [m.status for m, _ in sent(layer)] == [200]  # type: ignore[union-attr]
    assert not [e for e in layer.events() if isinstance(e, CancelReceived)]
    assert invite.state is TransactionState.ACCEPTED


def test_cancel_matching_nothing_gets_481() -> None:
    layer = TransactionLayer()
    layer.receive_data(req_bytes("CANCEL", branch="z9hG4bKnone"), UAC, now=0.0)
    assert [m.status for m, _ in sent(layer)] == [481]  # type: ignore[union-attr]
    assert layer.counters.cancels_unmatched == 1
    assert not [e for e in layer.events() if isinstance(e, RequestReceived)]


# ---------------------------------------------------------------- RFC 2543 fallback


def test_rfc2543_invite_retransmission_ack_and_cancel_match_without_branch() -> None:
    layer = TransactionLayer()
    invite = new_request(layer, req_bytes(branch=None)).transaction
    layer.receive_data(req_bytes(branch=None), UAC, now=0.3)  # retransmission
    assert [m.status for m, _ in sent(layer)] == [100]  # type: ignore[union-attr]
    assert not [e for e in layer.events() if isinstance(e, RequestReceived)]
    # A different CSeq is a different transaction.
    other = new_request(layer, req_bytes(branch=None).replace(b"CSeq: 7", b"CSeq: 8"))
    assert other.transaction is not invite
    # CANCEL matches the INVITE without a branch.
    layer.receive_data(req_bytes("CANCEL", branch=None), UAC, now=0.5)
    out = sent(layer)
    assert [m.status for m, _ in out] == [200, 487]  # type: ignore[union-attr]
    tag = out[1][0].to.tag
    # An ACK with another To tag is not ours (goes to the TU); with ours it confirms.
    layer.events()
    layer.receive_data(req_bytes("ACK", branch=None, to_tag="wrong"), UAC, now=0.6)
    assert [type(e) for e in layer.events()] == [AckReceived]
    layer.receive_data(req_bytes("ACK", branch=None, to_tag=tag), UAC, now=0.7)
    assert invite.state is TransactionState.CONFIRMED
    assert layer.events() == []


def test_rfc2543_branch_without_cookie_is_not_trusted_alone() -> None:
    layer = TransactionLayer()
    a = new_request(layer, req_bytes("OPTIONS", branch="1"))
    # Same (non-cookie) branch but another Call-ID: another transaction.
    b = new_request(layer, req_bytes("OPTIONS", branch="1").replace(b"layer-1", b"layer-2"))
    assert a.transaction is not b.transaction


# ---------------------------------------------------------------- §18.2 routing


def test_stamp_via_adds_received_and_rport_only_to_the_top_via() -> None:
    msg = parse_message(req_bytes(via_host="client.example:5062", via_params=";rport"))
    assert isinstance(msg, SipRequest)
    stamp_via(msg, Peer("UDP", "192.0.2.7", 40000))
    top, second = msg.vias
    assert top.received == "192.0.2.7" and top.rport == 40000
    assert second.received is None and second.branch == "z9hG4bKupstream"
    assert msg.headers.items()[0][0] == "Via"  # order kept


def test_stamp_via_received_only_when_host_differs() -> None:
    same = parse_message(req_bytes(via_host="127.0.0.1:5062"))
    assert isinstance(same, SipRequest)
    stamp_via(same, UAC)
    assert same.top_via.received is None
    named = parse_message(req_bytes(via_host="alice.example"))
    assert isinstance(named, SipRequest)
    stamp_via(named, UAC)
    assert named.top_via.received == "127.0.0.1" and named.top_via.rport is None


def test_stamp_via_top_via_sharing_a_line() -> None:
    data = req_bytes(via_params=";rport").replace(
        b"\r\nVia: SIP/2.0/UDP 10.9.9.9", b", SIP/2.0/UDP 10.9.9.9"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    stamp_via(msg, Peer("UDP", "127.0.0.1", 1234))
    assert [v.rport for v in msg.vias] == [1234, None]


def test_response_destination_rules() -> None:
    def via_of(params: str, host: str = "client.example:5070") -> object:
        msg = parse_message(req_bytes(via_host=host, via_params=params))
        assert isinstance(msg, SipRequest)
        stamp_via(msg, Peer("UDP", "192.0.2.7", 40000))
        return msg.top_via

    src = Peer("UDP", "192.0.2.7", 40000)
    # rport: symmetric (RFC 3581 §4)
    assert response_destination(via_of(";rport"), src) == Peer("UDP", "192.0.2.7", 40000)  # type: ignore[arg-type]
    # received, no rport: received address, sent-by port (§18.2.2)
    assert response_destination(via_of(""), src) == Peer("UDP", "192.0.2.7", 5070)  # type: ignore[arg-type]
    # no port in sent-by: 5060
    assert response_destination(via_of("", host="client.example"), src) == Peer(  # type: ignore[arg-type]
        "UDP", "192.0.2.7", 5060
    )
    # maddr wins
    assert response_destination(via_of(";maddr=239.1.1.1"), src) == Peer(  # type: ignore[arg-type]
        "UDP", "239.1.1.1", 5070
    )
    # reliable: the connection it came on; fallback to received + sent-by port
    tcp = Peer("TCP", "192.0.2.7", 51000)
    assert response_destination(via_of(""), tcp) == tcp  # type: ignore[arg-type]
    assert stream_fallback(via_of(""), "TCP") == Peer("TCP", "192.0.2.7", 5070)  # type: ignore[arg-type]


def test_responses_go_where_18_2_2_says() -> None:
    layer = TransactionLayer()
    layer.receive_data(
        req_bytes("OPTIONS", via_params=";rport"), Peer("UDP", "127.0.0.1", 40123), 0
    )
    (event,) = layer.events()
    assert isinstance(event, RequestReceived)
    layer.send_response(event.transaction, make_response(event.request, 200), now=0.0)
    ((response, peer),) = sent(layer)
    assert peer == Peer("UDP", "127.0.0.1", 40123)
    assert response.top_via.rport == 40123 and response.top_via.received == "127.0.0.1"


# ---------------------------------------------------------------- malformed, overload, errors


def test_malformed_request_with_routing_headers_gets_400_with_reason() -> None:
    layer = TransactionLayer()
    bad = req_bytes("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: lots")
    layer.receive_data(bad, UAC, now=0.0)
    ((response, peer),) = sent(layer)
    assert isinstance(response, SipResponse) and response.status == 400
    assert response.reason == "Bad Max-Forwards"
    assert peer == UAC
    assert layer.counters.malformed_answered == 1 and layer.events() == []


def test_garbage_is_dropped_and_counted() -> None:
    layer = TransactionLayer()
    for junk in (b"hello world\r\n\r\n", b"\x00\xff" * 40, b"SIP/2.0 200 OK\r\n\r\n"):
        layer.receive_data(junk, UAC, now=0.0)
    assert layer.datagrams_to_send() == [] and layer.events() == []
    assert layer.counters.malformed_dropped == 3


def test_keepalive_whitespace_datagrams_are_ignored() -> None:
    layer = TransactionLayer()
    layer.receive_data(b"\r\n\r\n", UAC, now=0.0)
    assert layer.counters.malformed_dropped == 0 and layer.datagrams_to_send() == []


def test_overload_gets_503_with_retry_after() -> None:
    layer = TransactionLayer(max_transactions=2)
    for i in range(3):
        layer.receive_data(req_bytes("OPTIONS", branch=f"z9hG4bKo{i}"), UAC, now=0.0)
    ((response, _),) = sent(layer)
    assert response.status == 503 and response.headers.get("Retry-After") == "5"  # type: ignore[union-attr]
    assert layer.counters.overload_rejected == 1 and layer.server_transactions == 2


def test_transport_error_ends_transactions_to_that_peer() -> None:
    layer = TransactionLayer()
    other = new_request(layer, req_bytes("OPTIONS", branch="z9hG4bKx"))
    msg = parse_message(req_bytes("OPTIONS", branch=new_branch()))
    assert isinstance(msg, SipRequest)
    dest = Peer("TCP", "127.0.0.1", 9)
    client = layer.send_request(msg, dest, now=0.0)
    layer.transport_error(dest, now=0.1)
    errors = [e for e in layer.events() if isinstance(e, TransportError)]
    assert [e.transaction for e in errors] == [client]
    assert client.terminated and not other.transaction.terminated


# ---------------------------------------------------------------- two layers, lossy network


def test_two_layers_complete_every_transaction_over_a_lossy_network() -> None:
    """A UAC layer and a UAS layer exchange INVITE/BYE/OPTIONS over a fake network that drops
    30% of datagrams; retransmission timers must still complete (almost) all of them."""
    rng = random.Random(1234)
    uac, uas = TransactionLayer(), TransactionLayer()
    uac_peer, uas_peer = Peer("UDP", "127.0.0.1", 5062), Peer("UDP", "127.0.0.1", 5060)
    finals: dict[str, int] = {}
    now = 0.0
    n = 60
    for i in range(n):
        method = ("INVITE", "OPTIONS", "BYE")[i % 3]
        data = (
            f"{method} sip:vm@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch="
            f"{new_branch()}\r\nFrom: <sip:a@x>;tag=a\r\nTo: <sip:vm@y>\r\nCall-ID: c{i}\r\n"
            f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        msg = parse_message(data)
        assert isinstance(msg, SipRequest)
        uac.send_request(msg, uas_peer, now)
    timeouts = 0
    for _ in range(20000):
        for data, _peer in uac.datagrams_to_send():
            if rng.random() > 0.3:
                uas.receive_data(data, uac_peer, now)
        for event in uas.events():
            if isinstance(event, RequestReceived):
                status = 486 if event.request.method == "INVITE" else 200
                uas.send_response(
                    event.transaction, make_response(event.request, status, to_tag="t"), now
                )
        for data, _peer in uas.datagrams_to_send():
            if rng.random() > 0.3:
                uac.receive_data(data, uas_peer, now)
        for event in uac.events():
            if isinstance(event, ResponseReceived) and event.response.status >= 200:
                finals[event.response.call_id] = event.response.status
            elif isinstance(event, TransactionTimeout):
                timeouts += 1
        timers = [t for t in (uac.get_timer(), uas.get_timer()) if t is not None]
        if not timers:
            break
        now = min(timers)
        uac.handle_timer(now)
        uas.handle_timer(now)
    # With 30% loss each way, 7-11 tries each: losing every one is ~1e-4 per transaction.
    assert len(finals) >= n - 1 and len(finals) + timeouts == n
    assert uac.client_transactions == 0 and uas.server_transactions == 0


# ---------------------------------------------------------------- robustness


_SEEDS = [
    req_bytes(),
    req_bytes("CANCEL"),
    req_bytes("ACK", to_tag="t"),
    req_bytes("OPTIONS", branch=None),
    req_bytes("BYE", via_params=";rport;received=1.2.3.4"),
    bytes(make_response(parse_message(req_bytes()), 180, to_tag="x")),  # type: ignore[arg-type]
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 255), st.sampled_from("rid")), max_size=8
    ),
)
def test_no_input_makes_the_layer_raise(seed: bytes, edits: list[tuple[int, int, str]]) -> None:
    """Mutated messages (replaced, inserted, deleted bytes) never raise out of receive_data,
    and whatever the layer sends in reply is a SIP response (a 400 echoes the request's
    headers as they were, even a broken From, per §8.2.6)."""
    data = bytearray(seed)
    for position, byte, kind in edits:
        i = position % (len(data) + 1)
        if kind == "r" and i < len(data):
            data[i] = byte
        elif kind == "i":
            data.insert(i, byte)
        elif kind == "d" and i < len(data):
            del data[i]
    layer = TransactionLayer()
    layer.receive_data(req_bytes(), UAC, now=0.0)  # an INVITE in progress to match against
    layer.receive_data(bytes(data), UAC, now=0.1)
    layer.receive_data(bytes(data), UAC, now=0.2)  # and as a retransmission
    layer.handle_timer(100.0)
    for out, _ in layer.datagrams_to_send():
        assert out.startswith(b"SIP/2.0 ") and out.endswith(b"\r\n\r\n")


def test_rfc2543_ack_for_a_2xx_in_accepted_goes_to_the_tu() -> None:
    """RFC 6026 §7.1: an ACK matching an INVITE server transaction in Accepted is passed up
    (with RFC 2543 matching the ACK for a 2xx carries the INVITE's Via, so it does match)."""
    layer = TransactionLayer()
    invite = new_request(layer, req_bytes(branch=None)).transaction
    layer.send_response(invite, make_response(invite.request, 200, to_tag="ok1"), now=0.1)
    layer.datagrams_to_send()
    layer.receive_data(req_bytes("ACK", branch=None, to_tag="ok1"), UAC, now=0.2)
    (event,) = layer.events()
    assert isinstance(event, AckReceived) and event.request.to.tag == "ok1"
    assert invite.state is TransactionState.ACCEPTED
    assert layer.counters.stray_acks == 0
