"""Server transactions (RFC 3261 §17.2, RFC 6026 §7.1) driven by a fake clock."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import SipRequest, SipResponse, make_response, parse_message
from sipum_protocol.sip.transaction import (
    AckReceived,
    Peer,
    RequestReceived,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    TransactionStateError,
    TransactionTimeout,
)

UAC = Peer("UDP", "127.0.0.1", 5062)
UAC_TCP = Peer("TCP", "127.0.0.1", 40001)


def request_bytes(
    method: str = "INVITE", *, branch: str = "z9hG4bKabc1", transport: str = "UDP", cseq: int = 1
) -> bytes:
    return (
        f"{method} sip:voicemail@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5062;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:voicemail@127.0.0.1>\r\n"
        "Call-ID: srv-1@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def ack_bytes(branch: str = "z9hG4bKabc1", to_tag: str = "t1") -> bytes:
    return (
        "ACK sip:voicemail@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        f"To: <sip:voicemail@127.0.0.1>;tag={to_tag}\r\n"
        "Call-ID: srv-1@127.0.0.1\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def receive_new(
    layer: TransactionLayer, data: bytes, peer: Peer = UAC, now: float = 0.0
) -> ServerTransaction:
    layer.receive_data(data, peer, now)
    (event,) = [e for e in layer.events() if isinstance(e, RequestReceived)]
    return event.transaction


def statuses(layer: TransactionLayer) -> list[int]:
    out = []
    for data, _ in layer.datagrams_to_send():
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        out.append(msg.status)
    return out


def run_timers(layer: TransactionLayer, until: float) -> list[float]:
    sent_at: list[float] = []
    while True:
        when = layer.get_timer()
        if when is None or when > until:
            return sent_at
        layer.handle_timer(when)
        sent_at.extend(when for _ in layer.datagrams_to_send())


# ---------------------------------------------------------------- INVITE server


def test_100_trying_within_200_ms_when_the_tu_is_silent() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    assert tx.state is TransactionState.PROCEEDING
    assert layer.datagrams_to_send() == []
    when = layer.get_timer()
    assert when is not None and when < 0.2
    layer.handle_timer(when)
    assert statuses(layer) == [100]


def test_no_100_when_the_tu_answers_quickly() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    layer.send_response(tx, make_response(tx.request, 180, to_tag="t1"), now=0.01)
    assert statuses(layer) == [180]
    assert run_timers(layer, until=1.0) == []


def test_trying_delay_zero_sends_100_at_once() -> None:
    layer = TransactionLayer(timers=TimerConfig(trying_delay=0))
    receive_new(layer, request_bytes())
    assert statuses(layer) == [100]


def test_invite_retransmission_resends_the_last_provisional_and_is_not_passed_up() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    # Retransmission before anything was sent: 100 right away.
    layer.receive_data(request_bytes(), UAC, now=0.05)
    assert statuses(layer) == [100]
    layer.send_response(tx, make_response(tx.request, 180, to_tag="t1"), now=0.1)
    assert statuses(layer) == [180]
    layer.receive_data(request_bytes(), UAC, now=0.5)
    assert statuses(layer) == [180]
    assert layer.events() == []
    assert layer.counters.retransmissions_received == 2


def test_timer_g_doubles_up_to_t2_then_timer_h_times_out() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    layer.send_response(tx, make_response(tx.request, 486, to_tag="t1"), now=0.0)
    assert statuses(layer) == [486]
    assert tx.state is TransactionState.COMPLETED
    sent_at = run_timers(layer, until=100.0)
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    timeouts = [e for e in layer.events() if isinstance(e, TransactionTimeout)]
    assert [t.timer for t in timeouts] == ["H"]
    assert tx.state is TransactionState.TERMINATED
    assert layer.server_transactions == 0


def test_ack_confirms_and_timer_i_absorbs_acks_and_retransmissions() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    layer.send_response(tx, make_response(tx.request, 404, to_tag="t1"), now=0.0)
    layer.datagrams_to_send()
    layer.receive_data(request_bytes(), UAC, now=0.2)  # INVITE retransmitted in Completed
    assert statuses(layer) == [404]
    layer.receive_data(ack_bytes(), UAC, now=0.3)
    assert tx.state is TransactionState.CONFIRMED
    assert layer.get_timer() == pytest.approx(5.3)  # I = T4
    layer.receive_data(ack_bytes(), UAC, now=1.0)
    layer.receive_data(request_bytes(), UAC, now=1.1)
    assert layer.datagrams_to_send() == [] and layer.events() == []  # all absorbed
    layer.handle_timer(5.3)
    assert tx.state is TransactionState.TERMINATED
    # After I, the same INVITE is a new transaction.
    layer.events()
    again = receive_new(layer, request_bytes(), now=6.0)
    assert again is not tx


def test_reliable_invite_server_no_g_and_timer_i_zero() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes(transport="TCP"), peer=UAC_TCP)
    layer.send_response(tx, make_response(tx.request, 486, to_tag="t1"), now=0.0)
    ((_, peer),) = layer.datagrams_to_send()
    assert peer == UAC_TCP  # same connection (§18.2.2)
    assert layer.get_timer() == 32.0  # H only
    layer.receive_data(ack_bytes().replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"), UAC_TCP, now=0.1)
    assert tx.state is TransactionState.TERMINATED  # I = 0


def test_2xx_accepted_state_absorbs_invite_retransmissions_and_passes_2xx_and_timer_l() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    ok = make_response(tx.request, 200, to_tag="t1")
    layer.send_response(tx, ok, now=0.0)
    assert statuses(layer) == [200]
    assert tx.state is TransactionState.ACCEPTED
    # RFC 6026: INVITE retransmissions are absorbed, not answered, not passed up...
    layer.receive_data(request_bytes(), UAC, now=0.4)
    assert layer.datagrams_to_send() == [] and layer.events() == []
    # ...the TU's 2xx retransmissions (§13.3.1.4) go out through the transaction...
    layer.send_response(tx, ok, now=0.5)
    assert statuses(layer) == [200]
    # ...no timer G for 2xx...
    assert layer.get_timer() == pytest.approx(32.0)  # L = 64*T1
    # ...and the ACK for the 2xx (its own branch) goes to the TU.
    layer.receive_data(ack_bytes(branch="z9hG4bKack2xx"), UAC, now=0.6)
    (event,) = layer.events()
    assert isinstance(event, AckReceived) and event.request.to.tag == "t1"
    with pytest.raises(TransactionStateError):
        layer.send_response(tx, make_response(tx.request, 486), now=0.7)
    layer.handle_timer(32.0)
    assert tx.state is TransactionState.TERMINATED


def test_second_final_response_is_refused() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes())
    layer.send_response(tx, make_response(tx.request, 486, to_tag="t1"), now=0.0)
    with pytest.raises(TransactionStateError):
        layer.send_response(tx, make_response(tx.request, 200, to_tag="t1"), now=0.1)


# ---------------------------------------------------------------- non-INVITE server


def test_non_invite_trying_discards_then_proceeding_resends_provisional() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes("OPTIONS"))
    assert tx.state is TransactionState.TRYING
    layer.receive_data(request_bytes("OPTIONS"), UAC, now=0.5)
    assert layer.datagrams_to_send() == [] and layer.events() == []
    layer.send_response(tx, make_response(tx.request, 100), now=0.6)
    assert tx.state is TransactionState.PROCEEDING
    layer.receive_data(request_bytes("OPTIONS"), UAC, now=1.5)
    assert statuses(layer) == [100, 100]


def test_non_invite_completed_answers_retransmissions_with_the_final_then_timer_j() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes("BYE"))
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t1"), now=1.0)
    assert statuses(layer) == [200]
    assert tx.state is TransactionState.COMPLETED
    for t in (1.5, 2.5, 4.5):
        layer.receive_data(request_bytes("BYE"), UAC, now=t)
    assert statuses(layer) == [200, 200, 200]
    assert layer.events() == []
    assert run_timers(layer, until=100.0) == []  # the server never retransmits on its own
    assert tx.state is TransactionState.TERMINATED
    assert tx.retransmissions == 3


def test_timer_j_value_unreliable_and_reliable() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes("BYE"))
    layer.send_response(tx, make_response(tx.request, 200), now=1.0)
    assert layer.get_timer() == pytest.approx(33.0)
    tcp = receive_new(layer, request_bytes("BYE", branch="z9hG4bKtcp", transport="TCP"), UAC_TCP)
    layer.send_response(tcp, make_response(tcp.request, 200), now=1.0)
    assert tcp.state is TransactionState.TERMINATED  # J = 0


def test_guard_ends_a_non_invite_the_tu_never_answers() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes("OPTIONS"))
    layer.handle_timer(32.0)
    timeouts = [e for e in layer.events() if isinstance(e, TransactionTimeout)]
    assert [t.timer for t in timeouts] == ["guard"] and tx.terminated


def test_different_method_same_branch_is_a_different_transaction() -> None:
    layer = TransactionLayer()
    a = receive_new(layer, request_bytes("OPTIONS"))
    b = receive_new(layer, request_bytes("INFO"))
    assert a is not b and layer.server_transactions == 2


def test_same_branch_other_sent_by_is_a_different_transaction() -> None:
    layer = TransactionLayer()
    a = receive_new(layer, request_bytes("OPTIONS"))
    other = request_bytes("OPTIONS").replace(b"127.0.0.1:5062;", b"127.0.0.2:5062;")
    b = receive_new(layer, other)
    assert a is not b


def test_ack_never_creates_a_transaction() -> None:
    layer = TransactionLayer()
    layer.receive_data(ack_bytes(branch="z9hG4bKlonely"), UAC, now=0.0)
    (event,) = layer.events()
    assert isinstance(event, AckReceived)
    assert layer.server_transactions == 0 and layer.datagrams_to_send() == []


def test_request_is_kept_on_the_transaction() -> None:
    layer = TransactionLayer()
    tx = receive_new(layer, request_bytes("OPTIONS"))
    assert isinstance(tx.request, SipRequest) and tx.request.method == "OPTIONS"
    assert tx.method == "OPTIONS" and tx.peer == UAC
