"""Prometheus metrics of account removal (served by whichever service removes accounts: the
web-api, for users and administrators)."""

from __future__ import annotations

from prometheus_client import Counter

ACCOUNTS_DELETED = Counter(
    "sipum_web_accounts_deleted_total",
    "Accounts deleted, by whether the registrar-agent confirmed the de-registration in time",
    ["deregistration"],
)
ACCOUNT_BLOBS_LEFT = Counter(
    "sipum_web_account_blobs_left_total",
    "Blobs of deleted accounts the blob store failed to delete (left unreferenced; see the log)",
)
