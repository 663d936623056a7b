"""Prometheus metrics of the registrar-agent (served by the runtime on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_STARTED = Counter(
    "sipum_agent_calls_started_total",
    "INVITEs for a mailbox, by mode and reason",
    ["mode", "reason"],
)
CALLS_ENDED = Counter("sipum_agent_calls_ended_total", "Calls over, by end reason", ["end_reason"])
CALLS_REJECTED = Counter(
    "sipum_agent_calls_rejected_total", "INVITEs refused with a final error, by status", ["status"]
)
ACTIVE_CALLS = Gauge("sipum_agent_active_calls", "Calls in progress (ringing or answered)")
MEDIA_ALLOCATE_SECONDS = Histogram(
    "sipum_agent_media_allocate_seconds",
    "Time for a media-recorder to answer sipum.media.allocate",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
CALLS_MOVED = Counter(
    "sipum_agent_calls_moved_total",
    "Calls whose media-recorder was lost, by outcome (moved, no_recorder, reinvite_failed,"
    " not_tried)",
    ["result"],
)
CALL_MOVE_SECONDS = Histogram(
    "sipum_agent_call_move_seconds",
    "From a recorder taken for gone to the caller's 2xx to our re-INVITE (a moved call)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
REGISTRATIONS = Gauge(
    "sipum_agent_registrations", "User bindings at the registrar, by state", ["state"]
)
MWI_SUBSCRIPTIONS = Gauge(
    "sipum_agent_mwi_subscriptions", "Message-summary subscriptions held (RFC 3842)"
)
MWI_NOTIFIES = Counter(
    "sipum_agent_mwi_notifies_total", "NOTIFYs sent, by the subscriber's answer", ["result"]
)
MWI_REJECTED = Counter(
    "sipum_agent_mwi_rejected_total", "SUBSCRIBEs refused with a final error, by status", ["status"]
)
TRANSFERS = Counter(
    "sipum_agent_transfers_total",
    "Calls transferred by REFER (0 to the operator), by outcome",
    ["outcome"],
)
SHARDS_SERVED = Gauge(
    "sipum_agent_shards_served", "Shards whose users we register (ours and those taken over)"
)
SHARD_TAKEOVERS = Counter("sipum_agent_shard_takeovers_total", "Shards of silent agents taken over")
