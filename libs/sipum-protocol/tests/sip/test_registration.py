"""Registration state machine and pool, sans-I/O, against an in-memory registrar, fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipum_protocol.sip import digest
from sipum_protocol.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    via_for_request,
)
from sipum_protocol.sip.registration import (
    DigestCredentials,
    Registration,
    RegistrationBinding,
    RegistrationChanged,
    RegistrationPolicy,
    RegistrationPool,
    RegistrationState,
    backoff_delay,
    refresh_delay,
)

REALM = "sipum.test"


class FakeRegistrar:
    """A registrar in memory (RFC 3261 §10.3) with digest auth, nonces that can go stale,
    ``Min-Expires`` and ``423``. Requests pass through bytes to exercise serialisation."""

    def __init__(
        self,
        passwords: dict[str, str],
        *,
        algorithms: tuple[str, ...] = ("MD5",),
        min_expires: int = 60,
        max_expires: int = 3600,
        proxy_auth: bool = False,
        verify_against: dict[str, str] | None = None,
    ) -> None:
        self.passwords = passwords
        self.algorithms = algorithms
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.proxy_auth = proxy_auth
        self.valid_nonces: set[str] = set()
        self.stale_nonces: set[str] = set()
        self.bindings: dict[str, dict[str, int]] = {}  # AOR user -> contact -> expires
        self.received: list[SipRequest] = []
        self._n = 0

    def _nonce(self) -> str:
        self._n += 1
        nonce = f"nonce{self._n}"
        self.valid_nonces.add(nonce)
        return nonce

    def make_all_nonces_stale(self) -> None:
        self.stale_nonces |= self.valid_nonces
        self.valid_nonces.clear()

    def _challenge(self, request: SipRequest, stale: bool = False) -> SipResponse:
        status, header = (
            (407, "Proxy-Authenticate") if self.proxy_auth else (401, "WWW-Authenticate")
        )
        nonce = self._nonce()
        values = [
            (header, digest.make_challenge(REALM, nonce, algorithm=a, stale=stale))
            for a in self.algorithms
        ]
        return make_response(request, status, to_tag="reg1", headers=values)

    def handle(self, request: SipRequest) -> SipResponse:
        # The REGISTER leaves through a sender that writes its Via (one branch per
        # transaction), as the user agent and the transaction endpoint do.
        assert request.headers.get("Via") is None
        sent = SipRequest(request.method, request.uri, request.headers.copy(), request.body)
        sent.headers.prepend("Via", via_for_request("UDP", "127.0.0.1", 5070))
        request = parse_message(bytes(sent))  # type: ignore[assignment]
        assert isinstance(request, SipRequest)
        self.received.append(request)
        user = request.to.uri.user
        assert user is not None
        name = "Proxy-Authorization" if self.proxy_auth else "Authorization"
        auth = request.headers.get(name)
        if auth is None:
            return self._challenge(request)
        creds = digest.parse_authorization(auth)
        if creds.nonce in self.stale_nonces:
            return self._challenge(request, stale=True)
        password = self.passwords.get(user, "")
        ha1 = digest.compute_ha1(user, REALM, password, creds.algorithm)
        if creds.nonce not in self.valid_nonces or not digest.verify_authorization(
            auth, "REGISTER", ha1, realm=REALM
        ):
            return self._challenge(request)
        expires = int(request.headers.get("Expires") or "3600")
        contact = request.headers.get("Contact") or ""
        uri = contact.strip("<>")
        if expires and expires < self.min_expires:
            return make_response(
                request, 423, to_tag="reg1", headers=[("Min-Expires", str(self.min_expires))]
            )
        bound = self.bindings.setdefault(user, {})
        if expires == 0:
            bound.pop(uri, None)
        else:
            bound[uri] = min(expires, self.max_expires)
        contacts = [("Contact", f"<{c}>;expires={e}") for c, e in bound.items()]
        return make_response(request, 200, to_tag="reg1", headers=contacts)


def binding(user: str = "alice", *, expires: int = 3600, algorithms=("MD5",), password="secret"):
    creds = DigestCredentials(
        username=user,
        ha1={a: digest.compute_ha1(user, REALM, password, a) for a in algorithms},
        realm=REALM,
    )
    return RegistrationBinding(
        user=user,
        domain=REALM,
        contact_host="127.0.0.1",
        contact_port=5070,
        credentials=creds,
        expires=expires,
    )


def exchange(reg: Registration, registrar: FakeRegistrar, now: float) -> list[RegistrationChanged]:
    """Send every REGISTER that is due at ``now`` (challenge round trips included)."""
    events: list[RegistrationChanged] = []
    for _ in range(10):
        if reg.due_at is None or reg.due_at > now:
            break
        request = reg.build_request(now)
        events += reg.receive_response(registrar.handle(request), now)
    return events


def test_register_answers_401_from_ha1_and_is_registered():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(1))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    first, second = registrar.received
    # §10.2: Request-URI is the domain, To/From the AOR, one Call-ID, CSeq increments.
    assert first.uri == "sip:sipum.test"
    assert str(first.to.uri) == "sip:alice@sipum.test"
    assert first.from_.tag and first.from_.tag == second.from_.tag
    assert first.call_id == second.call_id
    assert second.cseq == (first.cseq[0] + 1, "REGISTER")
    assert first.headers.get("Authorization") is None
    assert "qop=auth" in second.headers.get("Authorization", "")
    assert "nc=00000001" in second.headers.get("Authorization", "")
    assert first.top_via.branch != second.top_via.branch
    assert second.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert second.headers.get("Expires") == "3600"
    assert [e.state for e in events] == [RegistrationState.REGISTERED]
    assert events[0].previous is RegistrationState.UNREGISTERED
    assert events[0].expires == 3600
    assert reg.state is RegistrationState.REGISTERED
    # Refresh at max(expires/2, expires-30) = 3570, times a jitter factor in [0.9, 1].
    assert reg.due_at is not None and 3570 * 0.9 <= reg.due_at <= 3570


def test_refresh_keeps_call_id_and_answers_preemptively_with_next_nc():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(2))
    reg.start(0.0)
    exchange(reg, registrar, 0.0)
    due = reg.due_at
    assert due is not None
    assert exchange(reg, registrar, due - 1) == []  # not yet
    events = exchange(reg, registrar, due)
    assert events == []  # still registered: nothing to publish
    refresh = registrar.received[-1]
    assert len(registrar.received) == 3  # one packet: no 401 round trip
    assert refresh.call_id == registrar.received[0].call_id
    assert refresh.cseq[0] == 3
    assert "nc=00000002" in refresh.headers.get("Authorization", "")
    assert reg.state is RegistrationState.REGISTERED
    assert reg.expires_at == due + 3600


def test_granted_expires_comes_from_our_contact_param_then_expires_header():
    reg = Registration(binding(expires=3600), rng=random.Random(3))
    reg.start(0.0)
    req = reg.build_request(0.0)
    ok = make_response(
        req,
        200,
        headers=[
            ("Contact", "<sip:alice@10.0.0.9:5060>;expires=3000"),  # the phone's binding
            ("Contact", "<sip:alice@127.0.0.1:5070>;expires=120"),
            ("Expires", "999"),
        ],
    )
    events = reg.receive_response(ok, 0.0)
    assert events[0].expires == 120
    assert reg.due_at is not None and 90 * 0.9 <= reg.due_at <= 90  # max(60, 90)
    now = reg.due_at
    req = reg.build_request(now)
    ok = make_response(
        req, 200, headers=[("Contact", "<sip:alice@127.0.0.1:5070>"), ("Expires", "40")]
    )
    reg.receive_response(ok, now)
    assert reg.granted_expires == 40
    assert reg.due_at is not None and now + 20 * 0.9 <= reg.due_at <= now + 20  # max(20, 10)


def test_200_without_our_contact_is_a_failure():
    reg = Registration(binding(), rng=random.Random(4))
    reg.start(0.0)
    req = reg.build_request(0.0)
    events = reg.receive_response(
        make_response(req, 200, headers=[("Contact", "<sip:alice@10.0.0.9>;expires=60")]), 0.0
    )
    assert [e.state for e in events] == [RegistrationState.FAILED]
    assert "did not bind" in events[0].reason


def test_stale_nonce_is_retried_without_failure():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(5))
    reg.start(0.0)
    exchange(reg, registrar, 0.0)
    registrar.make_all_nonces_stale()
    due = reg.due_at
    assert due is not None
    events = exchange(reg, registrar, due)
    assert events == []
    stale_answer, retry = registrar.received[-2:]
    assert reg.state is RegistrationState.REGISTERED
    assert "nc=00000001" in retry.headers.get("Authorization", "")
    old_nonce = digest.parse_authorization(stale_answer.headers.get("Authorization", "")).nonce
    new_nonce = digest.parse_authorization(retry.headers.get("Authorization", "")).nonce
    assert new_nonce != old_nonce
    assert reg.failures == 0


def test_forgotten_nonce_without_stale_is_retried_once_for_preemptive_credentials():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(6))
    reg.start(0.0)
    exchange(reg, registrar, 0.0)
    registrar.valid_nonces.clear()  # e.g. the registrar restarted: plain 401, no stale flag
    due = reg.due_at
    assert due is not None
    assert exchange(reg, registrar, due) == []
    assert reg.state is RegistrationState.REGISTERED
    assert len(registrar.received) == 4


def test_wrong_ha1_fails_after_one_answer_and_backs_off_exponentially():
    registrar = FakeRegistrar({"alice": "other-password"})
    policy = RegistrationPolicy(backoff_base=30, backoff_max=1800)
    reg = Registration(binding(), policy=policy, rng=random.Random(7))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    assert len(registrar.received) == 2  # REGISTER, REGISTER with credentials; no loop
    assert [e.state for e in events] == [RegistrationState.FAILED]
    assert events[0].status == 401 and events[0].reason == "credentials rejected"
    assert events[0].previous is RegistrationState.UNREGISTERED
    first_retry = reg.due_at
    assert first_retry is not None and 15 <= first_retry <= 30
    assert events[0].retry_at == first_retry
    events = exchange(reg, registrar, first_retry)
    assert events == []  # still failed: no new publication
    second_retry = reg.due_at
    assert second_retry is not None and first_retry + 30 <= second_retry <= first_retry + 60
    # Then the password is fixed at the registrar: the next attempt succeeds.
    registrar.passwords["alice"] = "secret"
    events = exchange(reg, registrar, second_retry)
    assert [e.state for e in events] == [RegistrationState.REGISTERED]
    assert events[0].previous is RegistrationState.FAILED
    assert reg.failures == 0


def test_407_is_answered_with_proxy_authorization():
    registrar = FakeRegistrar({"alice": "secret"}, proxy_auth=True)
    reg = Registration(binding(), rng=random.Random(8))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    assert [e.state for e in events] == [RegistrationState.REGISTERED]
    assert registrar.received[1].headers.get("Proxy-Authorization", "").startswith("Digest ")
    assert registrar.received[1].headers.get("Authorization") is None


@pytest.mark.parametrize(("held", "expected"), [(("MD5", "SHA-256"), "SHA-256"), (("MD5",), "MD5")])
def test_strongest_algorithm_we_hold_an_ha1_for_is_used(held, expected):
    registrar = FakeRegistrar({"alice": "secret"}, algorithms=("MD5", "SHA-256"))
    reg = Registration(binding(algorithms=held), rng=random.Random(9))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    assert [e.state for e in events] == [RegistrationState.REGISTERED]
    creds = digest.parse_authorization(registrar.received[1].headers.get("Authorization", ""))
    assert creds.algorithm == expected


def test_no_ha1_for_the_offered_algorithm_fails():
    registrar = FakeRegistrar({"alice": "secret"}, algorithms=("SHA-256",))
    reg = Registration(binding(algorithms=("MD5",)), rng=random.Random(10))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    assert [e.state for e in events] == [RegistrationState.FAILED]
    assert len(registrar.received) == 1


def test_423_is_retried_with_min_expires():
    registrar = FakeRegistrar({"alice": "secret"}, min_expires=300)
    reg = Registration(binding(expires=60), rng=random.Random(11))
    reg.start(0.0)
    events = exchange(reg, registrar, 0.0)
    assert [e.state for e in events] == [RegistrationState.REGISTERED]
    assert [r.headers.get("Expires") for r in registrar.received] == ["60", "60", "300"]
    assert events[0].expires == 300


def test_timeout_and_503_retry_after():
    reg = Registration(binding(), rng=random.Random(12))
    reg.start(0.0)
    reg.build_request(0.0)
    events = reg.request_failed(32.0, "timeout")
    assert [e.state for e in events] == [RegistrationState.FAILED]
    assert events[0].reason == "timeout"
    assert reg.due_at is not None and 32 + 15 <= reg.due_at <= 32 + 30
    req = reg.build_request(reg.due_at)
    events = reg.receive_response(make_response(req, 503, headers=[("Retry-After", "120")]), 100.0)
    assert events == []  # already failed
    assert reg.due_at == 220.0


def test_responses_for_other_requests_are_ignored():
    reg = Registration(binding(), rng=random.Random(13))
    reg.start(0.0)
    req = reg.build_request(0.0)
    old = make_response(req, 200, headers=[("Contact", "<sip:alice@127.0.0.1:5070>")])
    old.headers.set("CSeq", "99 REGISTER")
    assert reg.receive_response(old, 0.0) == []
    trying = make_response(req, 100)
    assert reg.receive_response(trying, 0.0) == []
    assert reg.in_flight is req


def test_stop_deregisters_with_expires_zero():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(14))
    reg.start(0.0)
    exchange(reg, registrar, 0.0)
    assert registrar.bindings["alice"]
    assert reg.stop(10.0) == []  # UNREGISTERING is not published
    events = exchange(reg, registrar, 10.0)
    last = registrar.received[-1]
    assert last.headers.get("Expires") == "0"
    assert last.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert [e.state for e in events] == [RegistrationState.UNREGISTERED]
    assert events[0].previous is RegistrationState.REGISTERED
    assert registrar.bindings["alice"] == {}
    assert reg.finished and reg.due_at is None


def test_stop_while_first_register_in_flight_deregisters_after_the_200():
    registrar = FakeRegistrar({"alice": "secret"})
    reg = Registration(binding(), rng=random.Random(15))
    reg.start(0.0)
    first = reg.build_request(0.0)
    reg.receive_response(registrar.handle(first), 0.0)  # 401
    second = reg.build_request(0.0)
    assert reg.stop(0.1) == []
    reg.receive_response(registrar.handle(second), 0.2)  # 200: bound, so now de-register
    assert reg.state is RegistrationState.UNREGISTERING and reg.due_at == 0.2
    events = exchange(reg, registrar, 0.2)
    assert [e.state for e in events] == [RegistrationState.UNREGISTERED]
    assert registrar.bindings["alice"] == {}


def test_new_credentials_reregister_at_once():
    registrar = FakeRegistrar({"alice": "old password"})
    pool = RegistrationPool(max_in_flight=5, max_rate=None, rng=random.Random(17))
    reg = pool.add(binding(password="old password"), 0.0)
    for _ in range(3):
        for _r, request in pool.requests_to_send(0.0):
            pool.receive_response(registrar.handle(request), 0.0)
    assert reg.state is RegistrationState.REGISTERED
    registrar.passwords["alice"] = "new password"
    new = binding(password="new password").credentials
    assert pool.update_credentials("sip:alice@sipum.test", new, 5.0)
    assert not pool.update_credentials("sip:nobody@sipum.test", new, 5.0)
    assert pool.get_timer() == 5.0  # due now, not at the next refresh
    events = []
    for _ in range(3):
        for _r, request in pool.requests_to_send(5.0):
            events += pool.receive_response(registrar.handle(request), 5.0)
    assert events == []  # still registered throughout
    last = registrar.received[-1]
    assert digest.parse_authorization(last.headers.get("Authorization", "")).nonce
    assert registrar.bindings["alice"] and reg.state is RegistrationState.REGISTERED
    assert reg.expires_at == 5.0 + 3600


def test_new_credentials_while_a_register_is_in_flight_are_tried_right_after():
    registrar = FakeRegistrar({"alice": "new password"})
    reg = Registration(binding(password="old password"), rng=random.Random(18))
    reg.start(0.0)
    first = reg.build_request(0.0)
    reg.receive_response(registrar.handle(first), 0.0)  # 401
    with_old = reg.build_request(0.0)
    reg.update_credentials(binding(password="new password").credentials, 0.5)
    assert reg.due_at is None  # still in flight
    events = reg.receive_response(registrar.handle(with_old), 1.0)
    assert [e.reason for e in events] == ["credentials rejected"]
    assert reg.due_at == 1.0  # not after the backoff: the new HA1 is tried at once
    events = exchange(reg, registrar, 1.0)
    assert [e.state for e in events] == [RegistrationState.REGISTERED]


def test_stop_never_registered_finishes_at_once():
    reg = Registration(binding(), rng=random.Random(16))
    reg.start(5.0)
    assert reg.stop(1.0) == []
    assert reg.finished and reg.due_at is None


def test_refresh_and_backoff_formulas():
    policy = RegistrationPolicy(
        refresh_margin=30, refresh_jitter=0.0, backoff_base=2, backoff_max=20
    )
    rng = random.Random(0)
    assert refresh_delay(3600, policy, rng) == 3570
    assert refresh_delay(40, policy, rng) == 20
    delays = [backoff_delay(n, policy, rng) for n in range(1, 8)]
    ceilings = [2, 4, 8, 16, 20, 20, 20]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


# ----------------------------------------------------------------------------- pool


def drive_pool(pool: RegistrationPool, registrar: FakeRegistrar, now: float, latency: float):
    """Run the pool against the registrar with a fixed response latency until nothing is due
    before ``now``; returns (events, max in flight observed, time of last activity)."""
    events: list[RegistrationChanged] = []
    pending: list[tuple[float, SipRequest]] = []
    t = 0.0
    max_seen = 0
    last_activity = 0.0
    for _ in range(1_000_000):
        for _reg, request in pool.requests_to_send(t):
            pending.append((t + latency, request))
            last_activity = t
        max_seen = max(max_seen, pool.in_flight)
        assert pool.in_flight <= pool.max_in_flight
        timer = pool.get_timer()
        next_response = min((d for d, _ in pending), default=None)
        candidates = [x for x in (timer, next_response) if x is not None]
        if not candidates:
            break
        t = max(t, min(candidates))
        if t > now:
            break
        ready = [p for p in pending if p[0] <= t]
        pending = [p for p in pending if p[0] > t]
        for _due, request in ready:
            events += pool.receive_response(registrar.handle(request), t)
            last_activity = t
    return events, max_seen, last_activity


def test_pool_bounds_requests_in_flight_and_registers_everyone():
    users = {f"u{i}": "secret" for i in range(1000)}
    registrar = FakeRegistrar(users)
    pool = RegistrationPool(max_in_flight=50, max_rate=None, rng=random.Random(20))
    for user in users:
        pool.add(binding(user), 0.0)
    first = pool.requests_to_send(0.0)
    assert len(first) == 50  # never a 1000-packet burst
    for _reg, request in first:
        pool.receive_response(registrar.handle(request), 0.01)
    events, max_seen, _ = drive_pool(pool, registrar, now=100.0, latency=0.01)
    assert max_seen == 50
    assert pool.count(RegistrationState.REGISTERED) == 1000
    assert sum(e.state is RegistrationState.REGISTERED for e in events) == 1000
    assert pool.stats.max_in_flight_seen == 50


def test_pool_rate_limit_spreads_requests_over_time():
    users = {f"u{i}": "secret" for i in range(200)}
    registrar = FakeRegistrar(users)
    pool = RegistrationPool(max_in_flight=50, max_rate=100.0, rng=random.Random(21))
    for user in users:
        pool.add(binding(user), 0.0)
    events, _, last = drive_pool(pool, registrar, now=100.0, latency=0.001)
    assert pool.count(RegistrationState.REGISTERED) == 200
    # 400 REGISTERs (challenge + answer) at 100/s with a burst of 50: at least 3.5 s.
    assert pool.stats.requests_sent == 400
    assert 3.4 <= last <= 4.5


def test_pool_refreshes_are_spread_and_use_window():
    users = {f"u{i}": "secret" for i in range(300)}
    registrar = FakeRegistrar(users)
    pool = RegistrationPool(max_in_flight=20, max_rate=None, rng=random.Random(22))
    for user in users:
        pool.add(binding(user, expires=600), 0.0)
    drive_pool(pool, registrar, now=10.0, latency=0.001)
    dues = sorted(r.due_at for r in pool if r.due_at is not None)
    assert len(dues) == 300
    # refresh at 570 s × [0.9, 1]: spread over ~57 s instead of one instant.
    assert dues[0] >= 570 * 0.9 - 1 and dues[-1] <= 571
    assert dues[-1] - dues[0] > 30


def test_pool_stop_deregisters_everyone_and_empties():
    users = {f"u{i}": "secret" for i in range(120)}
    registrar = FakeRegistrar(users)
    pool = RegistrationPool(max_in_flight=10, max_rate=None, rng=random.Random(23))
    for user in users:
        pool.add(binding(user), 0.0)
    drive_pool(pool, registrar, now=50.0, latency=0.001)
    assert pool.count(RegistrationState.REGISTERED) == 120
    assert pool.stop(60.0) == []
    events: list[RegistrationChanged] = []
    t = 60.0
    for _ in range(1000):
        batch = pool.requests_to_send(t)
        assert pool.in_flight <= 10
        if not batch:
            break
        for _reg, request in batch:
            events += pool.receive_response(registrar.handle(request), t)
        t += 0.01
    assert pool.idle
    assert sum(e.state is RegistrationState.UNREGISTERED for e in events) == 120
    assert all(not bound for bound in registrar.bindings.values())


def test_pool_remove_and_failure_reporting():
    registrar = FakeRegistrar({"alice": "secret", "bob": "secret"})
    pool = RegistrationPool(max_in_flight=5, max_rate=None, rng=random.Random(24))
    pool.add(binding("alice"), 0.0)
    pool.add(binding("bob"), 0.0)
    with pytest.raises(ValueError):
        pool.add(binding("bob"), 0.0)
    sent = pool.requests_to_send(0.0)
    assert len(sent) == 2
    bob_call_id = pool.get("sip:bob@sipum.test").call_id  # type: ignore[union-attr]
    for reg, request in sent:
        if reg.aor == "sip:alice@sipum.test":
            pool.receive_response(registrar.handle(request), 0.0)
    assert len(pool.requests_to_send(0.0)) == 1  # alice answers her challenge
    events = pool.request_failed(bob_call_id, 32.0, "timeout")
    assert [(e.aor, e.state) for e in events] == [("sip:bob@sipum.test", RegistrationState.FAILED)]
    assert pool.in_flight == 1  # alice's answer to the challenge
    assert pool.stats.failures == 1
    assert pool.remove("sip:nobody@sipum.test", 33.0) == []


def test_pool_forget_drops_a_binding_without_deregistering_it():
    registrar = FakeRegistrar({"alice": "secret", "bob": "secret"})
    pool = RegistrationPool(max_in_flight=5, max_rate=None, rng=random.Random(25))
    pool.add(binding("alice"), 0.0)
    pool.add(binding("bob"), 0.0)
    drive_pool(pool, registrar, now=5.0, latency=0.001)
    assert pool.count(RegistrationState.REGISTERED) == 2
    assert pool.forget("sip:alice@sipum.test")
    assert not pool.forget("sip:alice@sipum.test")
    assert pool.get("sip:alice@sipum.test") is None and len(pool) == 1
    # no Expires: 0 for alice, no refresh either: only bob's refresh comes due
    later = [reg.aor for reg, _ in pool.requests_to_send(10_000.0)]
    assert later == ["sip:bob@sipum.test"]
    assert registrar.bindings.get("alice")  # still bound at the registrar


# ----------------------------------------------------------------------------- invariants

_OUTCOMES = ["100", "200", "200-other", "401", "401-stale", "407", "423", "500", "503", "timeout"]


def _answer(request: SipRequest, outcome: str, n: int) -> SipResponse | None:
    contact = request.headers.get("Contact") or ""
    challenge = digest.make_challenge(REALM, f"n{n}", stale=outcome == "401-stale")
    if outcome == "100":
        return make_response(request, 100)
    if outcome == "200":
        return make_response(request, 200, headers=[("Contact", f"{contact};expires=60")])
    if outcome == "200-other":
        return make_response(request, 200, headers=[("Contact", "<sip:x@10.9.9.9>;expires=60")])
    if outcome in ("401", "401-stale"):
        return make_response(request, 401, headers=[("WWW-Authenticate", challenge)])
    if outcome == "407":
        return make_response(request, 407, headers=[("Proxy-Authenticate", challenge)])
    if outcome == "423":
        return make_response(request, 423, headers=[("Min-Expires", str(3600 + n))])
    if outcome == "500":
        return make_response(request, 500)
    if outcome == "503":
        return make_response(request, 503, headers=[("Retry-After", "7")])
    return None  # timeout


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.floats(0.0, 4000.0)),
            st.tuples(st.just("answer"), st.integers(0, 10_000), st.sampled_from(_OUTCOMES)),
            st.tuples(st.just("remove"), st.integers(0, 7)),
            st.tuples(st.just("credentials"), st.integers(0, 7)),
            st.tuples(
                st.just("stop"),
            ),
        ),
        max_size=60,
    )
)
def test_pool_never_exceeds_window_and_never_strands_a_binding(ops):
    """Whatever the registrar answers (or not), every binding in the pool is either waiting
    for an outcome or has a next REGISTER due, and the window is never exceeded."""
    pool = RegistrationPool(max_in_flight=3, max_rate=10.0, rng=random.Random(0))
    for i in range(8):
        pool.add(binding(f"u{i}"), 0.0)
    now = 0.0
    pending: list[SipRequest] = []
    n = 0
    for op in ops:
        n += 1
        if op[0] == "advance":
            now += op[1]
            pending += [request for _reg, request in pool.requests_to_send(now)]
        elif op[0] == "answer" and pending:
            request = pending.pop(op[1] % len(pending))
            response = _answer(request, op[2], n)
            if response is None:
                pool.request_failed(request.call_id, now, "timeout")
            else:
                pool.receive_response(response, now)
                if response.status < 200:
                    pending.append(request)
        elif op[0] == "remove":
            pool.remove(f"sip:u{op[1]}@{REALM}", now)
        elif op[0] == "credentials":
            pool.update_credentials(f"sip:u{op[1]}@{REALM}", binding(f"u{op[1]}").credentials, now)
        elif op[0] == "stop":
            pool.stop(now)
        assert pool.in_flight <= pool.max_in_flight
        in_flight = {r.call_id for r in pool if r.in_flight is not None}
        assert len(in_flight) == pool.in_flight
        assert in_flight == {request.call_id for request in pending}
        for registration in pool:
            assert not registration.finished
            assert (registration.in_flight is None) != (registration.due_at is None), registration
        timer = pool.get_timer()
        if pool.in_flight < pool.max_in_flight and any(r.due_at is not None for r in pool):
            assert timer is not None
