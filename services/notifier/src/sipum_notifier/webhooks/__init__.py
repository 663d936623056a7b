"""Webhooks: mailbox events delivered as signed JSON to the endpoints users and domains set up.

``signature`` (the ``Sipum-Signature`` scheme), ``destination`` (where a request may go: the
SSRF guard), ``dispatcher`` (fan-out of events into the outbox and its delivery loop).
"""
