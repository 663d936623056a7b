"""Settings and counters of the SIP transports."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipum_protocol.sip.transaction import TimerConfig


@dataclass(slots=True)
class EndpointConfig:
    """Where to listen and the limits. A port of 0 asks the OS for a free one; ``None``
    disables that transport."""

    host: str = "127.0.0.1"
    """Address to bind (and, unless ``advertised_host`` is set, to put in Via/Contact)."""
    udp_port: int | None = 0
    tcp_port: int | None = None
    tls_port: int | None = None
    advertised_host: str | None = None
    """Host for our Via sent-by and Contact when it differs from the bound address (NAT)."""
    tls_certfile: str | None = None
    """PEM certificate chain of our TLS server (required when ``tls_port`` is set)."""
    tls_keyfile: str | None = None
    tls_cafile: str | None = None
    """CA bundle to verify TLS servers we connect to (system default when ``None``)."""
    tls_verify: bool = True
    """Verify the certificate of TLS servers we connect to (RFC 5922 host name checks)."""
    max_message: int = 65535
    max_headers: int = 128
    max_connections: int = 1024
    """TCP + TLS connections, each transport separately."""
    max_write_buffer: int = 1 << 20
    """A connection whose peer does not read more than this is closed."""
    idle_timeout: float = 300.0
    """Stream connections without traffic for this long are closed."""
    read_timeout: float = 30.0
    """A partial message on a stream must complete within this long."""
    connect_timeout: float = 5.0
    max_transactions: int = 100_000
    timers: TimerConfig = field(default_factory=TimerConfig)


@dataclass(slots=True)
class TransportCounters:
    """What the transports saw; with ``TransactionLayer.counters`` these are the SIP metrics."""

    udp_received: int = 0
    udp_sent: int = 0
    stream_messages_received: int = 0
    stream_messages_sent: int = 0
    connections_accepted: int = 0
    connections_opened: int = 0
    connections_rejected: int = 0
    """Incoming connections refused at ``max_connections``."""
    connections_closed_idle: int = 0
    connections_closed_read_timeout: int = 0
    connections_closed_slow_reader: int = 0
    connect_failures: int = 0
    framing_errors: int = 0
    """Stream input that cannot be framed (no/bad Content-Length, too large): closed."""
    keepalive_pongs: int = 0
    oversize_dropped: int = 0
    send_errors: int = 0
    internal_errors: int = 0
    """Exceptions out of the layer on input (bugs): logged, counted, the transport goes on."""
