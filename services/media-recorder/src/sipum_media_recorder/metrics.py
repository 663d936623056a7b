"""Prometheus metrics of the media-recorder (served on ``/metrics`` by the shared runtime)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALLOCATIONS = Counter(
    "sipum_recorder_allocations_total",
    "Allocation requests answered, by result (ok or the RpcError code)",
    ["result"],
)
ACTIVE_SESSIONS = Gauge("sipum_recorder_active_sessions", "Media sessions in progress")
SESSIONS_ENDED = Counter(
    "sipum_recorder_sessions_ended_total",
    "Media sessions over, by mode and end reason",
    ["mode", "end_reason"],
)
MESSAGES_STORED = Counter(
    "sipum_recorder_messages_stored_total",
    "Messages stored, by origin (call or recovery)",
    ["origin"],
)
RECORDINGS_DISCARDED = Counter(
    "sipum_recorder_recordings_discarded_total", "Recordings too short (or silent) to keep"
)
STORE_SECONDS = Histogram(
    "sipum_recorder_store_seconds",
    "From the end of a recording to its message.created event being acknowledged",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SPOOL_FAILURES = Counter(
    "sipum_recorder_spool_failures_total", "Failed uploads of recording chunks or manifests"
)
REPLICAS_GONE = Counter(
    "sipum_recorder_replicas_gone_total",
    "Other media-recorder replicas taken for gone (their heartbeats stopped)",
)
MESSAGES_INTERRUPTED = Counter(
    "sipum_recorder_messages_interrupted_total",
    "Recovered messages flagged interrupted (the caller was cut off by a crash)",
)
LINKS_REFUSED = Counter(
    "sipum_recorder_liveness_links_refused_total",
    "Liveness-link connections closed at once: liveness_link_max were open already",
)
