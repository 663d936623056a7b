"""Client transactions (RFC 3261 §17.1, RFC 6026 §7.2) driven by a fake clock."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
    parse_message,
)
from sipum_protocol.sip.transaction import (
    Peer,
    ResponseReceived,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    TransactionTimeout,
)

UAS = Peer("UDP", "127.0.0.1", 5070)
UAS_TCP = Peer("TCP", "127.0.0.1", 5070)


def request(method: str = "INVITE", transport: str = "UDP") -> SipRequest:
    data = (
        f"{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5060;branch={new_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: call-1@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Route: <sip:proxy.example;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def respond(req: SipRequest, status: int, tag: str = "b1") -> bytes:
    return bytes(make_response(req, status, to_tag=tag if status > 100 else None))


def run_timers(layer: TransactionLayer, until: float) -> list[float]:
    """Fire timers up to ``until``; return the times at which something was sent."""
    sent_at: list[float] = []
    while True:
        when = layer.get_timer()
        if when is None or when > until:
            return sent_at
        layer.handle_timer(when)
        sent_at.extend(when for _ in layer.datagrams_to_send())


def kinds(layer: TransactionLayer) -> list[str]:
    return [type(e).__name__ for e in layer.events()]


# ---------------------------------------------------------------- INVITE client


def test_timer_a_doubles_without_cap_and_timer_b_times_out() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(request(), UAS, now=0.0)
    assert [p for _, p in layer.datagrams_to_send()] == [UAS]
    sent_at = run_timers(layer, until=100.0)
    # T1=0.5: A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (intervals 0.5, 1, 2, 4, 8, 16); B at 32.
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.retransmissions == 6
    events = layer.events()
    assert isinstance(events[0], TransactionTimeout) and events[0].timer == "B"
    assert isinstance(events[1], TransactionTerminated)
    assert tx.state is TransactionState.TERMINATED
    assert layer.client_transactions == 0 and layer.get_timer() is None


def test_timers_scale_with_configured_t1() -> None:
    layer = TransactionLayer(timers=TimerConfig(t1=0.1, t2=0.4, t4=0.5))
    layer.send_request(request(), UAS, now=10.0)
    layer.datagrams_to_send()
    sent_at = run_timers(layer, until=100.0)
    assert [round(t - 10.0, 6) for t in sent_at] == [0.1, 0.3, 0.7, 1.5, 3.1, 6.3]
    assert any(isinstance(e, TransactionTimeout) for e in layer.events())


def test_provisional_stops_timer_a_and_timer_b() -> None:
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    layer.receive_data(respond(req, 180), UAS, now=0.2)
    assert tx.state is TransactionState.PROCEEDING
    (event,) = layer.events()
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    assert layer.get_timer() is None  # nothing re-sent, and the UAS owns the lifetime now
    assert run_timers(layer, until=100.0) == []


def test_reliable_transport_has_no_timer_a() -> None:
    layer = TransactionLayer()
    layer.send_request(request(transport="TCP"), UAS_TCP, now=0.0)
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == 32.0  # only B
    assert run_timers(layer, until=100.0) == []
    assert "TransactionTimeout" in kinds(layer)


def test_non_2xx_is_acked_inside_the_transaction_and_timer_d() -> None:
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    layer.receive_data(respond(req, 486), UAS, now=0.1)
    assert tx.state is TransactionState.COMPLETED
    ((ack_data, peer),) = layer.datagrams_to_send()
    ack = parse_message(ack_data)
    assert isinstance(ack, SipRequest) and ack.method == "ACK" and peer == UAS
    assert ack.uri == req.uri
    assert ack.top_via.branch == req.top_via.branch  # same branch (§17.1.1.3)
    assert len(ack.vias) == 1
    assert ack.cseq == (1, "ACK")
    assert ack.to.tag == "b1" and ack.from_.tag == "a1" and ack.call_id == req.call_id
    assert ack.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    (event,) = layer.events()
    assert isinstance(event, ResponseReceived) and event.response.status == 486
    # A retransmitted 486 is ACKed again and not passed up.
    layer.receive_data(respond(req, 486), UAS, now=1.0)
    assert len(layer.datagrams_to_send()) == 1
    assert layer.events() == []
    # Timer D: 32 s on UDP.
    assert layer.get_timer() == pytest.approx(32.1)
    layer.handle_timer(32.0)
    assert tx.state is TransactionState.COMPLETED
    layer.handle_timer(32.1)
    assert tx.state is TransactionState.TERMINATED
    assert kinds(layer) == ["TransactionTerminated"]


def test_timer_d_is_zero_on_reliable_transports() -> None:
    layer = TransactionLayer()
    req = request(transport="TCP")
    tx = layer.send_request(req, UAS_TCP, now=0.0)
    layer.receive_data(respond(req, 603), UAS_TCP, now=0.1)
    assert tx.state is TransactionState.TERMINATED
    assert kinds(layer) == ["ResponseReceived", "TransactionTerminated"]
    assert [parse_message(d).method for d, _ in layer.datagrams_to_send()[1:]] == ["ACK"]  # type: ignore[union-attr]


def test_2xx_goes_to_accepted_and_timer_m_absorbs_retransmissions_into_the_tu() -> None:
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    layer.receive_data(respond(req, 100), UAS, now=0.05)
    layer.receive_data(respond(req, 200), UAS, now=0.1)
    assert tx.state is TransactionState.ACCEPTED
    assert [e.response.status for e in layer.events() if isinstance(e, ResponseReceived)] == [
        100,
        200,
    ]
    # No ACK from the transaction for a 2xx (the TU sends it, §13.2.2.4).
    assert layer.datagrams_to_send() == []
    # RFC 6026: 2xx retransmissions (and 2xx from another fork) go to the TU again...
    layer.receive_data(respond(req, 200), UAS, now=0.6)
    layer.receive_data(respond(req, 200, tag="fork2"), UAS, now=0.7)
    events = layer.events()
    assert [e.response.to.tag for e in events if isinstance(e, ResponseReceived)] == [
        "b1",
        "fork2",
    ]
    # ...a late non-2xx is discarded.
    layer.receive_data(respond(req, 486), UAS, now=0.8)
    assert layer.events() == [] and layer.datagrams_to_send() == []
    # Timer M = 64*T1 after the first 2xx.
    assert layer.get_timer() == pytest.approx(32.1)
    layer.handle_timer(32.1)
    assert tx.state is TransactionState.TERMINATED
    # After M, a 2xx is a stray response for the UA core.
    layer.receive_data(respond(req, 200), UAS, now=33.0)
    assert kinds(layer) == ["TransactionTerminated", "StrayResponse"]


# ---------------------------------------------------------------- non-INVITE client


def test_timer_e_doubles_up_to_t2_then_timer_f() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(request("OPTIONS"), UAS, now=0.0)
    layer.datagrams_to_send()
    sent_at = run_timers(layer, until=100.0)
    # 0.5, +1, +2, +4 (T2), +4 ... while < 32 (F).
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.retransmissions == 10
    events = layer.events()
    assert isinstance(events[0], TransactionTimeout) and events[0].timer == "F"
    assert tx.state is TransactionState.TERMINATED


def test_timer_e_fires_every_t2_in_proceeding() -> None:
    layer = TransactionLayer()
    req = request("REGISTER")
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    assert run_timers(layer, until=0.5) == [0.5]
    layer.receive_data(respond(req, 100), UAS, now=0.6)
    assert tx.state is TransactionState.PROCEEDING
    sent_at = run_timers(layer, until=13.0)
    # The pending E (set at 0.5 for +1 s) fires at 1.5, then every T2.
    assert sent_at == [1.5, 5.5, 9.5]


def test_final_response_completes_and_timer_k_absorbs() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    layer.receive_data(respond(req, 200), UAS, now=0.1)
    assert tx.state is TransactionState.COMPLETED
    assert kinds(layer) == ["ResponseReceived"]
    layer.receive_data(respond(req, 200), UAS, now=1.0)
    assert layer.events() == []  # absorbed
    assert layer.get_timer() == pytest.approx(5.1)  # K = T4
    assert run_timers(layer, until=100.0) == []  # no retransmission after the final
    assert tx.state is TransactionState.TERMINATED


def test_timer_k_is_zero_and_no_timer_e_on_reliable_transports() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport="TCP")
    tx = layer.send_request(req, UAS_TCP, now=0.0)
    assert layer.get_timer() == 32.0
    layer.receive_data(respond(req, 404), UAS_TCP, now=0.1)
    assert tx.state is TransactionState.TERMINATED
    assert layer.client_transactions == 0


def test_send_request_validates_branch_and_method() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.send_request(req, UAS, now=0.0)
    with pytest.raises(ValueError):
        layer.send_request(req, UAS, now=0.0)  # same branch twice
    ack = request("ACK")
    with pytest.raises(ValueError):
        layer.send_request(ack, UAS, now=0.0)
    old = request("OPTIONS")
    old.headers.set("Via", "SIP/2.0/UDP 127.0.0.1;branch=1234")
    with pytest.raises(ValueError):
        layer.send_request(old, UAS, now=0.0)


def test_response_with_two_vias_is_discarded() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.send_request(req, UAS, now=0.0)
    response = make_response(req, 200)
    response.headers.add("Via", "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKother")
    layer.receive(response, UAS, now=0.1)
    assert layer.events() == [] and layer.counters.responses_discarded == 1


def test_cancel_waits_for_a_provisional_then_rearms_b() -> None:
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, UAS, now=0.0)
    layer.datagrams_to_send()
    assert layer.cancel(tx, now=0.1) is None  # §9.1: not before a provisional
    assert layer.datagrams_to_send() == []
    layer.receive_data(respond(req, 180), UAS, now=0.2)
    ((data, _),) = layer.datagrams_to_send()
    cancel = parse_message(data)
    assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
    assert cancel.top_via.branch == req.top_via.branch and cancel.cseq == (1, "CANCEL")
    assert cancel.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    # The CANCEL's 200 and the INVITE's 487 arrive.
    layer.receive_data(bytes(make_response(cancel, 200, to_tag="b1")), UAS, now=0.3)
    layer.receive_data(respond(req, 487), UAS, now=0.3)
    statuses = [
        (e.transaction.method, e.response.status)
        for e in layer.events()
        if isinstance(e, ResponseReceived)
    ]
    assert statuses == [("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)]
    assert tx.state is TransactionState.COMPLETED


def test_cancel_without_answer_ends_the_invite_after_64_t1() -> None:
    layer = TransactionLayer()
    req = request(transport="TCP")
    tx = layer.send_request(req, UAS_TCP, now=0.0)
    layer.receive_data(respond(req, 180), UAS_TCP, now=1.0)
    cancel_tx = layer.cancel(tx, now=100.0)
    assert cancel_tx is not None
    layer.events()
    layer.handle_timer(132.0)
    assert tx.state is TransactionState.TERMINATED
    timeouts = [e for e in layer.events() if isinstance(e, TransactionTimeout)]
    assert {t.transaction.method for t in timeouts} == {"INVITE", "CANCEL"}


def test_stray_response_for_unknown_branch() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.receive_data(respond(req, 200), UAS, now=0.0)
    (event,) = layer.events()
    assert type(event).__name__ == "StrayResponse"
    assert isinstance(event.response, SipResponse)  # type: ignore[union-attr]
    assert layer.counters.stray_responses == 1
