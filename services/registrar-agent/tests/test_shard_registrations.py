"""``UserRegistrations`` with taken shards, on the real ``RegistrationPool`` (no sockets): a
taken shard's users are added, given back with ``Expires: 0`` or only forgotten, our own
shard untouched; ``settled`` once every binding of our own shard had an answer."""

from __future__ import annotations

from datetime import UTC, datetime

from sipum.db.users import User
from sipum_protocol.sip.message import make_response
from sipum_protocol.sip.registration import (
    RegistrationBinding,
    RegistrationPool,
    RegistrationState,
)
from sipum_protocol.sip.transaction import Peer
from sipum_registrar_agent.registrations import UserRegistrations, shard_of

DOMAIN = "sipum.test"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


class PoolClient:
    """The part of ``RegistrationClient`` that ``UserRegistrations`` uses, without I/O."""

    def __init__(self) -> None:
        self.pool = RegistrationPool(max_rate=None)
        self.registrar = Peer("UDP", "127.0.0.1", 5060)
        self.removed: list[str] = []
        self.forgotten: list[str] = []

    def add(self, binding: RegistrationBinding) -> None:
        self.pool.add(binding, 0.0)

    def remove(self, aor: str) -> None:
        self.removed.append(aor)
        self.pool.remove(aor, 0.0)

    def forget(self, aor: str) -> bool:
        self.forgotten.append(aor)
        return self.pool.forget(aor)


def user(n: int, name: str, *, disabled: bool = False) -> User:
    return User(
        id=n,
        domain_id=1,
        domain=DOMAIN,
        username=name,
        display_name="",
        email=None,
        realm=DOMAIN,
        ha1="0" * 32,
        ha1b="0" * 32,
        ha1_sha256="0" * 64,
        has_pin=False,
        quota_bytes=None,
        max_messages=None,
        max_message_seconds=None,
        ring_timeout_seconds=None,
        email_attaches_audio=None,
        created_at=NOW,
        updated_at=NOW,
        disabled_at=NOW if disabled else None,
    )


NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hugo", "ida", "jan"]
EVERYONE = [user(i, n, disabled=n == "hugo") for i, n in enumerate(NAMES)]


def registrations(client: PoolClient) -> UserRegistrations:
    return UserRegistrations(
        client,  # type: ignore[arg-type]
        contact_host="127.0.0.1",
        contact_port=5071,
        expires=600,
        shard_index=1,
        shard_count=2,
    )


def aors(client: PoolClient) -> set[str]:
    return {r.aor for r in client.pool}


def shard_aors(shard: int) -> set[str]:
    return {
        f"sip:{u.username}@{DOMAIN}"
        for u in EVERYONE
        if not u.disabled and shard_of(u.username, DOMAIN, 2) == shard
    }


def answer_all(client: PoolClient) -> None:
    """Every REGISTER in flight answered 200 with the asked interval."""
    for registration, request in client.pool.requests_to_send(0.0):
        contact = request.headers.get("Contact") or ""
        response = make_response(
            request, 200, to_tag="reg", headers=[("Contact", f"{contact};expires=600")]
        )
        client.pool.receive_response(response, 0.1)
        assert registration.state is RegistrationState.REGISTERED, registration


def test_take_and_give_back_a_shard() -> None:
    client = PoolClient()
    regs = registrations(client)
    assert sum(regs.add(u) for u in EVERYONE if not u.disabled) == len(shard_aors(1))
    assert aors(client) == shard_aors(1)
    assert regs.take(0, EVERYONE) == len(shard_aors(0))  # hugo (disabled) is not registered
    assert aors(client) == shard_aors(0) | shard_aors(1)
    assert regs.take(0, EVERYONE) == 0  # idempotent
    assert regs.owns("frank", DOMAIN) and shard_of("frank", DOMAIN, 2) == 0

    assert regs.release(0, deregister=True) == len(shard_aors(0))
    assert set(client.removed) == shard_aors(0) and not client.forgotten
    assert not regs.owns("frank", DOMAIN)
    # never granted in this test: the pool forgets them at once; our own shard stays
    assert aors(client) == shard_aors(1)


def test_release_with_the_same_contact_only_forgets() -> None:
    client = PoolClient()
    regs = registrations(client)
    regs.take(0, EVERYONE)
    answer_all(client)
    assert regs.release(0, deregister=False) == len(shard_aors(0))
    assert set(client.forgotten) == shard_aors(0) and not client.removed
    assert aors(client) == set()
    assert client.pool.requests_to_send(10_000.0) == []  # no Expires: 0, no refresh


def test_settled_once_our_own_shard_is_answered() -> None:
    client = PoolClient()
    regs = registrations(client)
    assert regs.settled()  # nothing to register: settled
    for u in EVERYONE:
        if not u.disabled:
            regs.add(u)
    assert not regs.settled()
    answer_all(client)
    assert regs.settled()
    regs.take(0, EVERYONE)  # a taken shard still registering does not matter
    assert regs.settled()


def test_nothing_taken_while_stopping() -> None:
    client = PoolClient()
    regs = registrations(client)
    regs.stopping = True
    assert regs.take(0, EVERYONE) == 0 and aors(client) == set() and regs.shards == {1}
