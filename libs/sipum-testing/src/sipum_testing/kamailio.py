"""pytest plugin: a real Kamailio registrar/proxy on free loopback ports.

Kamailio runs with ``deploy/kamailio/kamailio.cfg`` and the ``WITH_HTABLE`` credential back-end:
the fixture writes the users' HA1 values into a db_text directory that the htable module loads
at start, so tests do not depend on the database schema.

Fixtures:

``kamailio_factory``
    ``kamailio_factory(users={"alice": "secret"}, ha1s={...}, domain=..., algorithm="MD5",
    min_expires=..., ...) -> KamailioServer``; every server started is stopped (by PID) at
    teardown.
``kamailio``
    one server for domain ``sipum.test`` with users alice/secret and bob/secret.

``KamailioServer.lookup(user)`` / ``dump()`` query the in-memory location table through
``kamcmd`` on the ctl socket in the server's run directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

KAMAILIO_BIN = "kamailio"
KAMCMD_BIN = "kamcmd"


def find_kamailio_cfg() -> Path:
    """Locate ``deploy/kamailio/kamailio.cfg`` of the source tree this module belongs to."""
    override = os.environ.get("SIPUM_KAMAILIO_CFG")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "deploy" / "kamailio" / "kamailio.cfg"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("deploy/kamailio/kamailio.cfg not found above " + str(here))


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password) (RFC 2617 §3.2.2.2, RFC 8760 §2.4 for SHA-256)."""
    data = f"{username}:{realm}:{password}".encode()
    if algorithm.upper() == "MD5":
        return hashlib.md5(data).hexdigest()
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def free_udp_port(host: str = "127.0.0.1", *, also_tcp: bool = False) -> int:
    """A port the OS says is free for UDP (and, with ``also_tcp``, for TCP too)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if not also_tcp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise KamailioError("no port free for both UDP and TCP")


@dataclass(frozen=True)
class RegisteredContact:
    """One binding in Kamailio's location table (from ``ul.lookup``)."""

    address: str
    expires: int
    call_id: str
    cseq: int


class KamailioError(RuntimeError):
    pass


def parse_kamcmd_output(text: str) -> Any:
    """Parse kamcmd's indented ``key: value`` / ``{ ... }`` output into dicts and lists.

    A key that repeats inside one block becomes a list. Anonymous ``{`` blocks are collected in
    a list under the key ``""``.
    """
    root: dict[str, Any] = {}
    stack: list[dict[str, Any]] = [root]

    def put(block: dict[str, Any], key: str, value: Any) -> None:
        if key in block:
            existing = block[key]
            if isinstance(existing, list) and key in block.get("__lists__", ()):
                existing.append(value)
            else:
                block[key] = [existing, value]
                block.setdefault("__lists__", set()).add(key)
        else:
            block[key] = value

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        if line == "{":
            child: dict[str, Any] = {}
            put(stack[-1], "", child)
            stack.append(child)
            continue
        key, sep, value = line.partition(":")
        if not sep:
            put(stack[-1], "", line)
            continue
        value = value.strip()
        if value == "{":
            child = {}
            put(stack[-1], key.strip(), child)
            stack.append(child)
        else:
            put(stack[-1], key.strip(), value)

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            node.pop("__lists__", None)
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return clean(root)


def _as_list(node: Any) -> list[Any]:
    if node is None:
        return []
    return node if isinstance(node, list) else [node]


@dataclass
class KamailioServer:
    """A running Kamailio started by this plugin (stop it with :meth:`stop`)."""

    host: str
    port: int
    domain: str
    algorithm: str
    run_dir: Path
    process: subprocess.Popen[bytes]
    ha1s: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def ctl_socket(self) -> str:
        return f"unix:{self.run_dir / 'ctl'}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "kamailio.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        result = subprocess.run(
            [KAMCMD_BIN, "-s", self.ctl_socket, *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        if result.returncode != 0:
            raise KamailioError(f"kamcmd {' '.join(args)} failed: {out.strip()}")
        return out

    def lookup(self, user: str) -> list[RegisteredContact]:
        """Contacts currently bound to ``user`` (``user`` or ``user@domain``); [] if none."""
        aor = user.split("@", 1)[0]
        out = self.kamcmd("ul.lookup", "location", aor)
        if "AOR not found" in out:
            return []
        tree = parse_kamcmd_output(out)
        blocks = _as_list(tree.get(""))
        contacts: list[RegisteredContact] = []
        for block in blocks:
            for entry in _as_list((block.get("Contacts") or {}).get("Contact")):
                contacts.append(
                    RegisteredContact(
                        address=entry["Address"],
                        expires=int(entry["Expires"]) if entry["Expires"].isdigit() else -1,
                        call_id=entry["Call-ID"],
                        cseq=int(entry["CSeq"]),
                    )
                )
        return contacts

    def contacts(self, user: str) -> list[str]:
        """The addresses of :meth:`lookup`'s contacts (``sip:alice@127.0.0.1:5070``)."""
        return [c.address for c in self.lookup(user)]

    def statistic(self, name: str) -> int:
        """One counter, e.g. ``usrloc:location_contacts`` (``stats.get_statistics group:``)."""
        group = name.split(":", 1)[0] + ":"
        out = self.kamcmd("stats.get_statistics", group)
        match = re.search(rf"^{re.escape(name)}\s*=\s*(\d+)", out, flags=re.MULTILINE)
        if match is None:
            raise KamailioError(f"no statistic {name}: {out.strip()}")
        return int(match.group(1))

    def registered_count(self) -> int:
        """Number of AORs in the location table (``ul.dump`` does not fit thousands)."""
        return self.statistic("usrloc:location_users")

    def contact_count(self) -> int:
        """Number of contacts in the location table."""
        return self.statistic("usrloc:location_contacts")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _write_htable_db(db_dir: Path, ha1s: Mapping[str, str]) -> None:
    """db_text files for the htable loader: a ``version`` table and ``subscriber_ha1``."""
    db_dir.mkdir(parents=True, exist_ok=True)
    (db_dir / "version").write_text(
        "id(int,auto) table_name(string) table_version(int)\n0:subscriber_ha1:2\n"
    )
    lines = ["key_name(string) key_type(int) value_type(int) key_value(string) expires(int)"]
    for user, ha1 in ha1s.items():
        if not re.fullmatch(r"[A-Za-z0-9._+-]+", user) or not re.fullmatch(r"[0-9a-f]+", ha1):
            raise ValueError(f"user name or HA1 not usable in the htable file: {user!r}")
        lines.append(f"{user}:0:0:{ha1}:0")
    (db_dir / "subscriber_ha1").write_text("\n".join(lines) + "\n")


def _options_probe(host: str, port: int, domain: str) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:9;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{domain}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def wait_until_answers_options(
    host: str, port: int, domain: str, *, timeout: float = 10.0, alive: Any = None
) -> None:
    """Send OPTIONS every 100 ms until Kamailio answers 200 (it does ~0.2 s after start)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise KamailioError("kamailio exited during start-up")
            sock.sendto(_options_probe(host, port, domain), (host, port))
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if data.startswith(b"SIP/2.0 200"):
                return
    raise KamailioError(f"kamailio on {host}:{port} did not answer OPTIONS within {timeout} s")


def start_kamailio(
    *,
    users: Mapping[str, str] | None = None,
    ha1s: Mapping[str, str] | None = None,
    domain: str = "sipum.test",
    algorithm: str = "MD5",
    host: str = "127.0.0.1",
    min_expires: int = 60,
    default_expires: int = 3600,
    max_expires: int = 7200,
    fr_inv_timer_ms: int = 180000,
    children: int | None = None,
    shm_mb: int = 64,
    extra_defines: Mapping[str, str | None] | None = None,
    start_timeout: float = 10.0,
    tcp: bool = False,
    postgres_url: str | None = None,
) -> KamailioServer:
    """Start Kamailio (foreground, own process) on a free UDP port and wait until it answers.

    ``users`` maps user name → password (HA1 computed here for ``domain``/``algorithm``);
    ``ha1s`` maps user name → ready HA1 (hex, same algorithm). ``tcp`` adds a TCP listener
    on the same port number. With ``postgres_url``
    (``postgres://user@host:port/db``) credentials come from the database's
    ``kamailio_subscriber`` view instead (``WITH_PGSQL``) and ``users``/``ha1s`` are ignored.
    """
    all_ha1s = {u: compute_ha1(u, domain, pw, algorithm) for u, pw in (users or {}).items()}
    all_ha1s.update(ha1s or {})
    cfg = find_kamailio_cfg()
    last_error: Exception | None = None
    for _attempt in range(3):  # the free port may be taken between probe and bind
        # Short path: the ctl unix socket path must stay below 108 bytes.
        run_dir = Path(tempfile.mkdtemp(prefix="kam-"))
        _write_htable_db(run_dir / "db", all_ha1s)
        port = free_udp_port(host, also_tcp=tcp)
        defines: dict[str, str | None] = {
            "SIPUM_LISTEN": f"udp:{host}:{port}",
            **({"SIPUM_LISTEN_TCP": f"tcp:{host}:{port}"} if tcp else {}),
            "SIPUM_DOMAIN": f'"{domain}"',
            "AUTH_ALGORITHM": f'"{algorithm}"',
            "HTABLE_DB_URL": f'"text://{run_dir / "db"}"',
            "CTL_SOCKET": f'"unix:{run_dir / "ctl"}"',
            "MIN_EXPIRES": str(min_expires),
            "DEFAULT_EXPIRES": str(default_expires),
            "MAX_EXPIRES": str(max_expires),
            "FR_INV_TIMER": str(fr_inv_timer_ms),
        }
        if postgres_url is None:
            defines["WITH_HTABLE"] = None
        else:
            defines["WITH_PGSQL"] = None
            defines["DBURL"] = f'"{postgres_url}"'
            column = "ha1_sha256" if algorithm.upper() == "SHA-256" else "ha1"
            defines["AUTH_DB_HA1_COLUMN"] = f'"{column}"'
        defines.update(extra_defines or {})
        argv = [
            KAMAILIO_BIN,
            "-f",
            str(cfg),
            "-DD",
            "-E",
            "-P",
            str(run_dir / "kamailio.pid"),
            "-Y",
            str(run_dir),
            "-m",
            str(shm_mb),
            "-M",
            "8",
        ]
        if children is not None:
            argv += ["-n", str(children)]
        for name, value in defines.items():
            argv += ["-A", name if value is None else f"{name}={value}"]
        log = open(run_dir / "kamailio.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        server = KamailioServer(
            host=host,
            port=port,
            domain=domain,
            algorithm=algorithm,
            run_dir=run_dir,
            process=process,
            ha1s=all_ha1s,
        )
        try:
            wait_until_answers_options(
                host, port, domain, timeout=start_timeout, alive=server.running
            )
            return server
        except KamailioError as exc:
            last_error = KamailioError(f"{exc}\n--- kamailio log ---\n{server.log_tail()}")
            server.stop()
    assert last_error is not None
    raise last_error


class KamailioFactory(Protocol):
    def __call__(self, **kwargs: Any) -> KamailioServer: ...


@pytest.fixture
def kamailio_factory() -> Iterator[KamailioFactory]:
    started: list[KamailioServer] = []

    def factory(**kwargs: Any) -> KamailioServer:
        server = start_kamailio(**kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def kamailio(kamailio_factory: KamailioFactory) -> KamailioServer:
    return kamailio_factory(users={"alice": "secret", "bob": "secret"})
